import Testing

@testable import Hashing

/// Property tests of the table builders' promises over many seeded random views, plus golden tables.
struct TableBuilderTests {
    static let seed = FarmSeed(farmName: "web")

    static func builder(_ algorithm: TableAlgorithm, buckets: Int = 4096) -> TableBuilder {
        try! TableBuilder(seed: seed, bucketCount: buckets, algorithm: algorithm)
    }

    /// `count` random views of 1...`maxNodes` members with random IDs and, if `weighted`, random weights.
    static func randomViews(count: Int, maxNodes: Int, weighted: Bool, seed: UInt64) -> [MembershipView] {
        var random = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            let size = Int.random(in: 1...maxNodes, using: &random)
            var ids = Set<UInt16>()
            while ids.count < size { ids.insert(UInt16.random(in: 1...UInt16.max, using: &random)) }
            return try! MembershipView(
                ids.map {
                    Member(
                        id: NodeID(rawValue: $0)!, weight: weighted ? UInt32.random(in: 1...1000, using: &random) : 100)
                })
        }
    }

    /// The lowest ID that is not in `view`.
    static func unusedID(in view: MembershipView) -> NodeID {
        (1...UInt16.max).lazy.compactMap(NodeID.init(rawValue:)).first { !view.ids.contains($0) }!
    }

    static func ideal(_ member: Member, in view: MembershipView, buckets: Int) -> Double {
        Double(buckets) * Double(member.weight) / Double(view.totalWeight)
    }

    /// Golden tables from an independent implementation (Python, in docs/hashing.md): any change here means nodes
    /// running different versions would disagree.
    @Test func goldenTables() throws {
        let view = try MembershipView([
            Member(id: NodeID(1)!, weight: 100), Member(id: NodeID(2)!, weight: 100),
            Member(id: NodeID(3)!, weight: 200), Member(id: NodeID(7)!, weight: 50),
        ])
        let rendezvous = Self.builder(.rendezvous, buckets: 64).build(view, generation: 1)
        let balanced = Self.builder(.balanced, buckets: 64).build(view, generation: 1)
        func owners(_ table: BucketTable) -> [UInt64] { (0..<64).map { UInt64(table.owner(ofBucket: $0)!.rawValue) } }
        #expect(FlowHash.hash(seed: 0, words: owners(rendezvous)) == 0xA0A5_FE7F_66F6_190F)
        #expect(FlowHash.hash(seed: 0, words: owners(balanced)) == 0xA055_ECB7_6D2A_42A8)
    }

    @Test(arguments: TableAlgorithm.allCases)
    func everyBucketIsOwnedByAMember(algorithm: TableAlgorithm) {
        for view in Self.randomViews(count: 100, maxNodes: 16, weighted: true, seed: 1) {
            let table = Self.builder(algorithm).build(view, generation: 3)
            let members = Set(view.ids)
            #expect((0..<table.count).allSatisfy { table.owner(ofBucket: $0).map(members.contains) == true })
            #expect(table.generation == 3)
        }
    }

    /// Logs computed once for a farm's nodes give the same tables as computing them at each build, also for views with
    /// a member the logs do not hold and for logs of another bucket count; the golden table holds with them.
    @Test(arguments: TableAlgorithm.allCases)
    func tablesBuiltFromKeptLogsAreTheSame(algorithm: TableAlgorithm) throws {
        let builder = Self.builder(algorithm)
        for view in Self.randomViews(count: 30, maxNodes: 16, weighted: true, seed: 5) {
            let all = builder.logs(for: view.ids)
            let some = builder.logs(for: view.ids.dropFirst())
            let other = Self.builder(algorithm, buckets: 1024).logs(for: view.ids)
            let plain = builder.build(view, generation: 1)
            #expect(builder.build(view, generation: 1, logs: all) == plain)
            #expect(builder.build(view, generation: 1, logs: some) == plain)
            #expect(builder.build(view, generation: 1, logs: other) == plain)
        }
        let golden = try MembershipView([
            Member(id: NodeID(1)!, weight: 100), Member(id: NodeID(2)!, weight: 100),
            Member(id: NodeID(3)!, weight: 200), Member(id: NodeID(7)!, weight: 50),
        ])
        let small = Self.builder(algorithm, buckets: 64)
        #expect(
            small.build(golden, generation: 1, logs: small.logs(for: golden.ids)) == small.build(golden, generation: 1))
    }

    /// The kept logs stop at `RendezvousLogs.entryLimit`: the first nodes by ID.
    @Test func keptLogsAreBounded() {
        let builder = Self.builder(.balanced, buckets: 1 << 20)
        let logs = builder.logs(for: (1...9).map { NodeID(rawValue: $0)! })
        #expect(logs.columns.keys.sorted() == (1...4).map { NodeID(rawValue: $0)! })
    }

    @Test func anEmptyViewOwnsNothing() {
        let table = Self.builder(.balanced).build(.empty, generation: 1)
        #expect(table.shares.isEmpty)
        #expect(table.owner(ofHash: 12345) == nil)
    }

    @Test(arguments: TableAlgorithm.allCases)
    func theSameViewAlwaysGivesTheSameTable(algorithm: TableAlgorithm) throws {
        for view in Self.randomViews(count: 20, maxNodes: 16, weighted: true, seed: 2) {
            let reordered = try MembershipView(view.members.reversed())
            #expect(
                Self.builder(algorithm).build(view, generation: 1)
                    == Self.builder(algorithm).build(reordered, generation: 1))
        }
    }

    /// Balanced: every node owns its weighted quota to within one bucket, which is within 0.4% of the ideal for 16
    /// equal nodes at 4096 buckets (the promise is 3%).
    @Test func balancedGivesEveryNodeItsQuota() {
        for weighted in [false, true] {
            for view in Self.randomViews(count: 200, maxNodes: 16, weighted: weighted, seed: 3) {
                let shares = Self.builder(.balanced).build(view, generation: 1).shares
                for member in view.members {
                    let ideal = Self.ideal(member, in: view, buckets: 4096)
                    let share = Double(shares[member.id] ?? 0)
                    #expect(abs(share - ideal) < 1, "node \(member.id) of \(view): \(share) vs \(ideal)")
                    if !weighted { #expect(abs(share - ideal) / ideal <= 0.004) }
                }
            }
        }
    }

    /// Rendezvous: shares are binomial draws. Over these views (up to 16 equal nodes, 4096 buckets) the worst share
    /// is within 22% of the ideal, and with 2 or 3 nodes within 7%: the bound docs/hashing.md states.
    @Test func rendezvousSharesStayWithinTheStatedBound() {
        for view in Self.randomViews(count: 200, maxNodes: 16, weighted: false, seed: 4) {
            let shares = Self.builder(.rendezvous).build(view, generation: 1).shares
            let bound = view.members.count <= 3 ? 0.07 : 0.22
            for member in view.members {
                let ideal = Self.ideal(member, in: view, buckets: 4096)
                let deviation = abs(Double(shares[member.id] ?? 0) - ideal) / ideal
                #expect(deviation <= bound, "node \(member.id) of \(view): \(deviation)")
            }
        }
    }

    /// Weights are honoured: with weights 1:2:3:4, shares follow them exactly (balanced) or within 10% (rendezvous).
    @Test(arguments: TableAlgorithm.allCases)
    func weightsAreHonouredProportionally(algorithm: TableAlgorithm) throws {
        let view = try MembershipView((1...4).map { Member(id: NodeID($0)!, weight: UInt32($0) * 250) })
        let shares = Self.builder(algorithm).build(view, generation: 1).shares
        for member in view.members {
            let ideal = Self.ideal(member, in: view, buckets: 4096)
            let deviation = abs(Double(shares[member.id]!) - ideal) / ideal
            #expect(deviation <= (algorithm == .balanced ? 0.003 : 0.10), "node \(member.id): \(deviation)")
        }
    }

    @Test func rendezvousMovesOnlyTheBucketsOfANodeThatLeaves() {
        for view in Self.randomViews(count: 200, maxNodes: 16, weighted: true, seed: 5) where view.members.count > 1 {
            let before = Self.builder(.rendezvous).build(view, generation: 1)
            let leaving = view.members[view.members.count / 2].id
            let after = Self.builder(.rendezvous).build(view.removing(leaving), generation: 2)
            let moved = before.changedBuckets(comparedTo: after)
            #expect(moved.allSatisfy { before.owner(ofBucket: $0) == leaving })
            #expect(moved.count == before.shares[leaving] ?? 0)
        }
    }

    @Test func rendezvousMovesBucketsOnlyToANodeThatJoins() throws {
        for view in Self.randomViews(count: 200, maxNodes: 15, weighted: true, seed: 6) {
            let joining = Member(id: Self.unusedID(in: view), weight: 300)
            let before = Self.builder(.rendezvous).build(view, generation: 1)
            let after = Self.builder(.rendezvous).build(try view.adding(joining), generation: 2)
            let moved = before.changedBuckets(comparedTo: after)
            #expect(moved.allSatisfy { after.owner(ofBucket: $0) == joining.id })
            #expect(moved.count == after.shares[joining.id] ?? 0)
        }
    }

    /// Balanced: a leaving node's buckets all go to survivors, and at most 2.5% of the table moves between survivors
    /// (measured up to 1.8% at 16 nodes; docs/hashing.md).
    @Test func balancedMovesLittleBeyondTheBucketsOfANodeThatLeaves() {
        for view in Self.randomViews(count: 200, maxNodes: 16, weighted: false, seed: 7) where view.members.count > 1 {
            let before = Self.builder(.balanced).build(view, generation: 1)
            let leaving = view.members[view.members.count / 2].id
            let after = Self.builder(.balanced).build(view.removing(leaving), generation: 2)
            let moved = before.changedBuckets(comparedTo: after)
            let ownedByLeaver = (0..<4096).filter { before.owner(ofBucket: $0) == leaving }
            #expect(Set(ownedByLeaver).isSubset(of: Set(moved)))
            #expect(Double(moved.count - ownedByLeaver.count) / 4096 <= 0.025, "\(view)")
        }
    }

    @Test func balancedGivesAJoiningNodeItsQuotaMovingLittleElse() throws {
        for view in Self.randomViews(count: 200, maxNodes: 15, weighted: false, seed: 8) {
            let joiningID = Self.unusedID(in: view)
            let joined = try view.adding(Member(id: joiningID, weight: 100))
            let before = Self.builder(.balanced).build(view, generation: 1)
            let after = Self.builder(.balanced).build(joined, generation: 2)
            let moved = before.changedBuckets(comparedTo: after)
            let toNewcomer = moved.filter { after.owner(ofBucket: $0) == joiningID }
            #expect(abs(Double(toNewcomer.count) - 4096 / Double(joined.members.count)) < 1)
            #expect(Double(moved.count - toNewcomer.count) / 4096 <= 0.025, "\(view)")
        }
    }

    @Test func refusesBucketCountsThatAreNotPowersOfTwoInRange() {
        for count in [0, 8, 100, 4095, 1 << 21] {
            #expect(throws: BucketCountError(count: count)) { try TableBuilder(seed: Self.seed, bucketCount: count) }
        }
        #expect(throws: Never.self) { try TableBuilder(seed: Self.seed, bucketCount: 16) }
    }

    @Test func negativeLog2MatchesTheDefinition() {
        #expect(FixedPointLog.negativeLog2Q24(1 << 63) == 1 << 24)  // u = 1/2
        #expect(FixedPointLog.negativeLog2Q24(1 << 62) == 2 << 24)  // u = 1/4
        #expect(FixedPointLog.negativeLog2Q24(0) == 64 << 24)
        #expect(FixedPointLog.negativeLog2Q24(.max) >= 1)
        // 3/4: -log2(0.75) = 0.415037...; within one unit of 2^-24 after truncation of the mantissa.
        let threeQuarters = Double(FixedPointLog.negativeLog2Q24(3 << 62)) / Double(1 << 24)
        #expect(abs(threeQuarters - 0.415_037_499_278_843_8) < 2e-7)
    }
}
