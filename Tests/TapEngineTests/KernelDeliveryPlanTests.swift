@testable import Hashing
import Testing

@testable import TapEngine

/// The rule behind kernel delivery: a bucket gets an action only if the engine would give every TCP frame of it that
/// very verdict whatever its flow table holds and whatever the frame's flags, since the kernel decides without them.
/// Checked against `Decider` in every delivery mode and role, with buckets in handovers, held and released.
struct KernelDeliveryPlanTests {
    static let tapMAC: UInt64 = 0x0200_00AA_BB01
    static let clientMAC: UInt64 = 0x0200_0000_0107
    static let macs: [UInt16: UInt64] = [1: 0x0200_0000_0011, 2: 0x0200_0000_0012, 3: 0x0200_0000_0013]

    static func state(_ delivery: Delivery, director: Bool, random: inout SeededGenerator) -> EngineState {
        let seed = FarmSeed(farmName: "web")
        let view = try! MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!, NodeID(3)!])
        let table = try! TableBuilder(seed: seed, bucketCount: 1024).build(view, generation: 1)
        func some(_ oneIn: UInt64) -> [Bool] { (0..<1024).map { _ in random.next() % oneIn == 0 } }
        let owned = (0..<1024).map { table.owner(ofBucket: $0) == NodeID(1)! }
        var state = EngineState(
            generation: 1, node: NodeID(1)!, seed: seed, vip: IPAddress("198.18.0.100")!, virtualMAC: 0x0242_C612_0064,
            table: table, delivery: delivery, isARPLeader: director, isDirector: director,
            handoverBuckets: zip(some(8), owned).map { $0 && $1 },
            releasedBuckets: zip(some(8), owned).map { $0 && !$1 },
            previousOwners: delivery == .flood ? nil : (0..<1024).map { _ in random.next() % 8 == 0 ? 2 : 0 },
            nodeMACs: macs)
        state.hold(zip(some(10), owned).map { $0 && $1 })
        return state
    }

    @Test(arguments: [(Delivery.flood, false), (.directed, true), (.directed, false), (.relay, true), (.relay, false)])
    func everyBucketWithAnActionGetsThatVerdictWhateverTheFlowTableHolds(delivery: Delivery, director: Bool) {
        var random = SeededGenerator(seed: 31)
        let state = Self.state(delivery, director: director, random: &random)
        let actions = KernelDeliveryPlan.actions(for: state, tapMAC: Self.tapMAC)
        let receiveMAC = delivery == .relay ? Self.macs[1]! : state.virtualMAC
        var checked = 0
        var acted = Set<UInt64>()
        for _ in 0..<5_000 {
            let client = IPAddress(ipv4: UInt32.random(in: 0...UInt32.max, using: &random))
            let port = UInt16.random(in: 1024...65535, using: &random)
            let syn = PacketBuilder.tcp(
                destinationMAC: receiveMAC, sourceMAC: Self.clientMAC, source: client, destination: state.vip,
                sourcePort: port, destinationPort: 80, flags: 0x02)
            let key = DeciderTests.frame(syn).key
            let bucket = state.table.bucket(
                ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: state.seed))
            let action = BucketFilterProgram.tcpKind(actions[bucket])
            guard action != 0 else { continue }
            acted.insert(action)
            let expected: Verdict =
                action == BucketFilterProgram.forwardKind ? .forward(state.bucketMACs[bucket]) : .deliver
            let sources = delivery == .relay ? [Self.clientMAC, Self.macs[2]!] : [Self.clientMAC]
            for source in sources {
                for flags: UInt8 in [0x02, 0x10, 0x11, 0x04] {
                    let frame = DeciderTests.frame(
                        PacketBuilder.tcp(
                            destinationMAC: receiveMAC, sourceMAC: source, source: client, destination: state.vip,
                            sourcePort: port, destinationPort: 80, flags: flags))
                    for known: UInt16? in [nil, 1, 2, 3] {
                        var flows = DeciderTests.flows()
                        if let known { _ = flows.insert(key, now: 0, value: known, confirmed: true) }
                        let verdict = Decider.decide(frame, state: state, flows: &flows, now: 1)
                        #expect(
                            verdict == expected,
                            "bucket \(bucket) flags \(flags) known \(known.map(String.init) ?? "-"): \(verdict)")
                        checked += 1
                    }
                }
            }
        }
        // The interface's stack takes the VIP's frames but in relay, where its path is closed.
        switch (delivery, director) {
        case (.directed, false):
            #expect(acted.isEmpty)
        case (.directed, true):
            #expect(acted == [BucketFilterProgram.deliverInPlaceKind, BucketFilterProgram.forwardKind])
        case (.relay, _):
            #expect(acted == [BucketFilterProgram.deliverIntoTAPKind])
        default:
            #expect(acted == [BucketFilterProgram.deliverInPlaceKind])
        }
        #expect(delivery == .directed && !director || checked > 5_000)
    }

    /// UDP: where the interface's stack takes the VIP's frames (flood, the directed director) every bucket has a UDP
    /// action, and it is the engine's verdict on every datagram of the bucket (held, in a handover, released, or not
    /// this node's); so no bucket's UDP moves between the kernel and the ring when a state changes. In relay delivery
    /// and on a node that is not the director, none.
    @Test(arguments: [(Delivery.flood, false), (.directed, true), (.directed, false), (.relay, true), (.relay, false)])
    func everyBucketsDatagramsGetTheEnginesVerdictInTheKernel(delivery: Delivery, director: Bool) {
        var random = SeededGenerator(seed: 37)
        var state = Self.state(delivery, director: director, random: &random)
        // A bucket with no owner (a node that left, its table not rebuilt yet): dropped.
        var owners = state.table.rawOwners
        owners[0] = 0
        state = EngineState(
            generation: 1, node: state.node, seed: state.seed, vip: state.vip, virtualMAC: state.virtualMAC,
            table: BucketTable(owners: owners, generation: 1), delivery: delivery, isARPLeader: director,
            isDirector: director, handoverBuckets: state.handoverBuckets, releasedBuckets: state.releasedBuckets,
            previousOwners: state.previousOwners, nodeMACs: Self.macs)
        state.hold(state.handoverBuckets)
        let actions = KernelDeliveryPlan.actions(for: state, tapMAC: Self.tapMAC)
        let kinds = actions.map(BucketFilterProgram.udpKind)
        guard delivery == .flood || delivery == .directed && director else {
            #expect(kinds.allSatisfy { $0 == 0 })
            return
        }
        #expect(kinds.allSatisfy { $0 != 0 })
        var seen = Set<UInt64>()
        var flows = DeciderTests.flows()
        for _ in 0..<20_000 {
            let client = IPAddress(ipv4: UInt32.random(in: 0...UInt32.max, using: &random))
            let port = UInt16.random(in: 1024...65535, using: &random)
            let frame = DeciderTests.frame(
                PacketBuilder.udp(
                    destinationMAC: state.virtualMAC, sourceMAC: Self.clientMAC, source: client,
                    destination: state.vip, sourcePort: port, destinationPort: 53, payload: [1]))
            let bucket = state.table.bucket(
                ofHash: Affinity.none.bucketHash(of: frame.key, isFragment: false, seed: state.seed))
            let kind = kinds[bucket]
            seen.insert(kind)
            let verdict = Decider.decide(frame, state: state, flows: &flows, now: 1)
            switch kind {
            case BucketFilterProgram.deliverInPlaceKind:
                #expect(verdict == .deliver, "bucket \(bucket)")
            case BucketFilterProgram.forwardKind:
                #expect(verdict == .forward(state.bucketMACs[bucket]), "bucket \(bucket)")
                #expect(actions[bucket] & 0xFFFF_FFFF_FFFF == BucketFilterProgram.wireOrder(state.bucketMACs[bucket]))
            default:
                #expect(kind == BucketFilterProgram.dropKind)
                if case .drop = verdict {} else { Issue.record("bucket \(bucket): \(verdict), the kernel drops it") }
            }
        }
        let expected: Set<UInt64> =
            delivery == .flood
            ? [BucketFilterProgram.deliverInPlaceKind, BucketFilterProgram.dropKind]
            : [BucketFilterProgram.deliverInPlaceKind, BucketFilterProgram.forwardKind, BucketFilterProgram.dropKind]
        #expect(seen == expected)
    }

    /// The directed director learns its own connections from its kernel in the buckets with a handover mark it owned
    /// first, or owns and owned before: all of them when it becomes the director, only the new marks while it stays
    /// it, none elsewhere.
    @Test func theDirectorLearnsItsOwnConnectionsInTheBucketsOfAHandover() {
        var random = SeededGenerator(seed: 41)
        var director = Self.state(.directed, director: true, random: &random)
        let me = director.node.rawValue
        // Buckets it released in the window, beside those node 2 served first.
        for bucket in stride(from: 0, to: director.table.count, by: 16) where director.table.rawOwners[bucket] != me {
            director.previousOwners[bucket] = me
        }
        let (marks, owners) = (director.previousOwners, director.table.rawOwners)
        let mine = (0..<director.table.count).map { marks[$0] != 0 && (marks[$0] == me || owners[$0] == me) }
        #expect(mine.contains(true) && mine.contains(false))
        let other = Self.state(.directed, director: false, random: &random)
        #expect(KernelDeliveryPlan.ownConnectionsToLearn(from: other, to: director) == mine)
        #expect(KernelDeliveryPlan.ownConnectionsToLearn(from: nil, to: director) == mine)
        #expect(!KernelDeliveryPlan.ownConnectionsToLearn(from: director, to: director).contains(true))
        #expect(!KernelDeliveryPlan.ownConnectionsToLearn(from: director, to: other).contains(true))
        let flood = Self.state(.flood, director: false, random: &random)
        #expect(!KernelDeliveryPlan.ownConnectionsToLearn(from: nil, to: flood).contains(true))
        // Buckets it takes only now (a restarted director's) have none of its connections.
        var before = other
        before.table = try! BucketTable.unowned(count: director.table.count)
        let onlyFirst = (0..<director.table.count).map { marks[$0] != 0 && marks[$0] == me }
        #expect(onlyFirst.contains(true))
        #expect(KernelDeliveryPlan.ownConnectionsToLearn(from: before, to: director) == onlyFirst)
    }
}
