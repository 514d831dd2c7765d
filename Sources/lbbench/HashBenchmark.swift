import Foundation
import Hashing

/// The measurements behind `lbbench hash`. Inputs come from a seeded generator, so runs differ only in timing.
struct HashBenchmark {
    let flows: Int
    let buckets: Int
    let repetitions: Int
    let seed = FarmSeed(farmName: "lbbench")

    /// Node counts whose tables are measured; all have equal weights except the last row, which is weighted.
    static let viewSizes = [2, 3, 8, 16, 64]

    func run() -> HashReport {
        let keys = Self.clientKeys(count: flows, generator: 1)
        return HashReport(
            buckets: buckets,
            keyLookup: measureKeyLookup(keys: keys),
            flowTable: measureFlowTable(keys: keys),
            tables: TableAlgorithm.allCases.flatMap { algorithm in
                Self.viewSizes.map { measureTable(algorithm: algorithm, view: Self.equalView($0)) }
                    + [measureTable(algorithm: algorithm, view: Self.weightedView)]
            }
        )
    }

    // MARK: - Inputs

    /// Client flows from 198.18.0.0/15 with random ports, to port 80 or 443.
    static func clientKeys(count: Int, generator seed: UInt64) -> [FlowKey] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let bits = random.next()
            return FlowKey(
                client: IPAddress(ipv4: 0xC612_0000 | UInt32(truncatingIfNeeded: bits & 0x1_FFFF)),
                clientPort: UInt16(truncatingIfNeeded: bits >> 32) | 1024,
                serverPort: bits >> 63 == 0 ? 80 : 443,
                proto: .tcp
            )
        }
    }

    static func equalView(_ count: Int) -> MembershipView {
        try! MembershipView(equalWeights: (1...count).map { NodeID($0)! })
    }

    static let weightedView = try! MembershipView([100, 200, 300, 400].enumerated().map {
        Member(id: NodeID($0.offset + 1)!, weight: $0.element)
    })

    // MARK: - Measurements

    /// The median over the repetitions of `body`'s time, in nanoseconds per operation.
    func nanosecondsPerOperation(operations: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let samples = (0..<repetitions).map { _ in
            let elapsed = clock.measure(body)
            let (seconds, attoseconds) = elapsed.components
            return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(operations)
        }
        return samples.sorted()[samples.count / 2]
    }

    func measureKeyLookup(keys: [FlowKey]) -> HashReport.KeyLookup {
        let table = try! TableBuilder(seed: seed, bucketCount: buckets).build(Self.equalView(8), generation: 1)
        var checksum: UInt64 = 0
        let ns = nanosecondsPerOperation(operations: keys.count) {
            for key in keys {
                let hash = Affinity.none.bucketHash(of: key, isFragment: false, seed: seed)
                checksum &+= UInt64(table.owner(ofHash: hash)?.rawValue ?? 0)
            }
        }
        blackHole(checksum)
        return .init(keys: keys.count, nanosecondsPerLookup: ns, millionsPerSecond: 1e3 / ns)
    }

    func measureFlowTable(keys: [FlowKey]) -> HashReport.FlowTableFigures {
        let absent = Self.clientKeys(count: keys.count, generator: 2).map {
            FlowKey(client: $0.client, clientPort: $0.clientPort, serverPort: 8080, proto: .udp)
        }
        var hits = 0
        var insertNs = 0.0
        var hitNs = 0.0
        var missNs = 0.0
        var evictions: [HashReport.Eviction] = []
        // Each repetition measures a fresh table so that inserts always start from empty.
        let clock = ContinuousClock()
        var samples: [(insert: Double, hit: Double, miss: Double)] = []
        for repetition in 0..<repetitions {
            var table = FlowTable(capacity: keys.count, idleTimeout: 60_000, closingTimeout: 5_000, seed: 42)
            let perKey = { (duration: Duration) -> Double in
                let (seconds, attoseconds) = duration.components
                return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(keys.count)
            }
            var evictedAtPercent: [Int: UInt64] = [:]
            let insert = clock.measure {
                for (index, key) in keys.enumerated() {
                    table.insert(key, now: 1)
                    if (index + 1) % (keys.count / 20) == 0 {
                        evictedAtPercent[(index + 1) * 100 / keys.count] = table.counters.evicted
                    }
                }
            }
            let hit = clock.measure {
                for key in keys where table.lookup(key, now: 2) { hits += 1 }
            }
            let miss = clock.measure {
                for key in absent where table.lookup(key, now: 2) { hits += 1 }
            }
            samples.append((perKey(insert), perKey(hit), perKey(miss)))
            if repetition == 0 {
                evictions = [50, 75, 90, 95, 100].map { percent in
                    let inserted = Double(keys.count) * Double(percent) / 100
                    let evicted = Double(evictedAtPercent[percent] ?? 0)
                    return .init(fillPercent: percent, evictedPercentOfInserts: 100 * evicted / inserted)
                }
            }
        }
        blackHole(UInt64(hits))
        insertNs = samples.map(\.insert).sorted()[samples.count / 2]
        hitNs = samples.map(\.hit).sorted()[samples.count / 2]
        missNs = samples.map(\.miss).sorted()[samples.count / 2]
        let slots = FlowTable(capacity: keys.count, idleTimeout: 1, closingTimeout: 1, seed: 0).slotCount
        return .init(
            capacity: keys.count,
            slots: slots,
            bytesPerFlow: FlowTable.bytesPerSlot,
            memoryMiB: Double(slots * FlowTable.bytesPerSlot) / 1_048_576,
            nanosecondsPerInsert: insertNs,
            nanosecondsPerHit: hitNs,
            nanosecondsPerMiss: missNs,
            evictions: evictions
        )
    }

    func measureTable(algorithm: TableAlgorithm, view: MembershipView) -> HashReport.TableFigures {
        let builder = try! TableBuilder(seed: seed, bucketCount: buckets, algorithm: algorithm)
        var table = builder.build(view, generation: 1)
        let buildNs = nanosecondsPerOperation(operations: 1) { table = builder.build(view, generation: 1) }

        let shares = table.shares
        let total = Double(view.totalWeight)
        let worstDeviation = view.members.map { member in
            let ideal = Double(buckets) * Double(member.weight) / total
            return abs(Double(shares[member.id] ?? 0) - ideal) / ideal
        }.max() ?? 0

        // A node in the middle of the ID range leaves; a new node with the median weight joins.
        let leaving = view.members[view.members.count / 2].id
        let afterLeave = builder.build(view.removing(leaving), generation: 2)
        let leaveMoved = table.changedBuckets(comparedTo: afterLeave)
        let leaveExtra = leaveMoved.filter { table.owner(ofBucket: $0) != leaving }

        let joining = Member(id: NodeID(view.members.count + 1)!, weight: view.members[view.members.count / 2].weight)
        let afterJoin = builder.build(try! view.adding(joining), generation: 2)
        let joinMoved = table.changedBuckets(comparedTo: afterJoin)
        let joinExtra = joinMoved.filter { afterJoin.owner(ofBucket: $0) != joining.id }

        let percent = { (count: Int) in 100 * Double(count) / Double(buckets) }
        return .init(
            algorithm: algorithm.rawValue,
            view: view.description,
            nodes: view.members.count,
            buildMilliseconds: buildNs / 1e6,
            worstShareDeviationPercent: 100 * worstDeviation,
            leaveMovedPercent: percent(leaveMoved.count),
            leaveMovedBetweenOthersPercent: percent(leaveExtra.count),
            joinMovedPercent: percent(joinMoved.count),
            joinMovedBetweenOthersPercent: percent(joinExtra.count)
        )
    }
}

/// Keeps a result alive so the optimiser cannot drop the loop that computed it.
@inline(never)
func blackHole(_ value: UInt64) {
    if value == 0x5EED_5EED_5EED_5EED { print("") }
}
