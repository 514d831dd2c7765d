import Foundation
import Glibc
import Hashing
import Testing

@testable import TapEngine

/// The prefilter, run by the kernel (`BPF_PROG_TEST_RUN`) against the Swift code it must agree with: the bucket of
/// every random flow (`Affinity.bucketHash` and the table), and for every kind of frame, never a drop of one the
/// engine would take. Needs root (CAP_BPF), as CI has.
@Suite(.enabled(if: getuid() == 0, "loading eBPF programs needs root"))
struct BucketPrefilterTests {
    static let vmac: UInt64 = 0x0242_C612_0064
    static let clientMAC: UInt64 = 0x0200_0000_0107
    static let seed = FarmSeed(farmName: "web")

    /// Node 1 of three in flood mode, with a few buckets in a handover each way.
    static func state(
        vip: IPAddress, affinity: Affinity, rules: [PortRule] = [], bucketCount: Int = 4096,
        delivery: Delivery = .flood, random: inout SeededGenerator
    ) -> EngineState {
        let view = try! MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!, NodeID(3)!])
        let table = try! TableBuilder(seed: seed, bucketCount: bucketCount).build(view, generation: 1)
        var taking = [Bool](repeating: false, count: bucketCount)
        var giving = taking
        for bucket in 0..<bucketCount {
            taking[bucket] = random.next() % 50 == 0
            giving[bucket] = random.next() % 50 == 0
        }
        return EngineState(
            generation: 1, node: NodeID(1)!, seed: seed, vip: vip, virtualMAC: vmac, table: table, rules: rules,
            defaultAffinity: affinity, delivery: delivery, isARPLeader: true, handoverBuckets: taking,
            releasedBuckets: giving)
    }

    static func prefilter(for state: EngineState) throws -> BucketPrefilter {
        let filter = try BucketPrefilter(shape: BucketFilterShape(state: state, receiveMAC: vmac))
        filter.pass(BucketPrefilter.buckets(for: state))
        return filter
    }

    static func randomClient(like vip: IPAddress, _ random: inout SeededGenerator) -> IPAddress {
        vip.isIPv4
            ? IPAddress(ipv4: UInt32.random(in: 0...UInt32.max, using: &random))
            : IPAddress(
                high: UInt64.random(in: 0...UInt64.max, using: &random),
                low: .random(in: 0...UInt64.max, using: &random))
    }

    /// A million random TCP and UDP flows over both families and the three affinities: the filter passes exactly
    /// those whose bucket the node needs (for TCP, its buckets and those it released; for UDP, its own).
    @Test func theKernelPutsEveryFlowInTheBucketSwiftDoes() throws {
        var random = SeededGenerator(seed: 19)
        var checked = 0
        for vip in [IPAddress("198.18.0.100")!, IPAddress("2001:db8::100")!] {
            for affinity in Affinity.allCases {
                let state = Self.state(vip: vip, affinity: affinity, random: &random)
                let filter = try Self.prefilter(for: state)
                let needed = BucketPrefilter.buckets(for: state)
                var mismatches: [String] = []
                let flows = vip.isIPv4 && affinity == .none ? 500_000 : 100_000
                for _ in 0..<flows {
                    let client = Self.randomClient(like: vip, &random)
                    let port = UInt16.random(in: 1...65535, using: &random)
                    let serverPort = UInt16.random(in: 1...65535, using: &random)
                    let isTCP = Bool.random(using: &random)
                    let bytes =
                        isTCP
                        ? PacketBuilder.tcp(
                            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: vip,
                            sourcePort: port, destinationPort: serverPort, flags: 0x10)
                        : PacketBuilder.udp(
                            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: vip,
                            sourcePort: port, destinationPort: serverPort, payload: [1, 2, 3])
                    let key = DeciderTests.frame(bytes).key
                    let bucket = state.table.bucket(
                        ofHash: affinity.bucketHash(of: key, isFragment: false, seed: Self.seed))
                    let verdict = filter.verdict(of: bytes)
                    let passes = isTCP ? needed.tcp[bucket] : needed.udp[bucket]
                    if verdict != (passes ? UInt32(KernelFilter.snapshotLength) : 0), mismatches.count < 5 {
                        mismatches.append("\(key) bucket \(bucket): \(verdict.map(String.init) ?? "no run")")
                    }
                    checked += 1
                }
                #expect(mismatches.isEmpty, "\(vip) \(affinity): \(mismatches)")
                let counts = filter.counts
                #expect(counts.passed + counts.dropped == UInt64(flows))
            }
        }
        #expect(checked == 1_000_000)
    }

    static let tapMAC: UInt64 = 0x0200_00AA_BB01
    static let target = KernelDeliveryTarget(tapIndex: 1, interfaceIndex: 1, interfaceMAC: 0x0200_0000_0011)

    /// The classifier over random TCP and UDP flows, in flood delivery, on a director in directed delivery and in
    /// relay delivery, with buckets in handovers each way: a TCP frame of a bucket in steady ownership, and a UDP
    /// frame but in relay delivery, is delivered (passed up unchanged as this host's; in relay, redirected with the
    /// TAP's MAC as its destination), forwarded (the owner's MAC, from the node's own) or dropped (UDP), exactly as
    /// `KernelDeliveryPlan` says, and the socket filter then keeps it out of the ring; everything else is left to the
    /// stack and the ring. Past the lease, the classifier touches nothing.
    @Test func theClassifierTakesExactlyTheBucketsInSteadyOwnership() throws {
        var random = SeededGenerator(seed: 23)
        for vip in [IPAddress("198.18.0.100")!, IPAddress("2001:db8::100")!] {
            for delivery in [Delivery.flood, .directed, .relay] {
                var state = Self.state(vip: vip, affinity: .none, delivery: delivery, random: &random)
                if delivery == .directed {
                    state = EngineState(
                        generation: 1, node: state.node, seed: state.seed, vip: vip, virtualMAC: Self.vmac,
                        table: state.table, delivery: .directed, isARPLeader: true, isDirector: true,
                        handoverBuckets: state.handoverBuckets, releasedBuckets: state.releasedBuckets,
                        previousOwners: (0..<state.table.count).map { _ in random.next() % 40 == 0 ? 2 : 0 },
                        nodeMACs: [1: Self.target.interfaceMAC, 2: 0x0200_0000_0012, 3: 0x0200_0000_0013])
                }
                let filter = try BucketPrefilter(
                    shape: BucketFilterShape(state: state, receiveMAC: Self.vmac), deliveringTo: Self.target)
                let buckets = BucketPrefilter.buckets(for: state, tapMAC: Self.tapMAC)
                filter.pass(buckets)
                let actions = KernelDeliveryPlan.actions(for: state, tapMAC: Self.tapMAC)
                let deliverKind =
                    delivery == .relay ? BucketFilterProgram.deliverIntoTAPKind : BucketFilterProgram.deliverInPlaceKind
                #expect(actions.contains { BucketFilterProgram.tcpKind($0) == deliverKind })
                #expect(
                    delivery != .directed
                        || actions.contains { BucketFilterProgram.tcpKind($0) == BucketFilterProgram.forwardKind })
                var mismatches: [String] = []
                var taken = 0
                for _ in 0..<50_000 {
                    let client = Self.randomClient(like: vip, &random)
                    let port = UInt16.random(in: 1...65535, using: &random)
                    let isTCP = random.next() % 4 != 0
                    let bytes =
                        isTCP
                        ? PacketBuilder.tcp(
                            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: vip,
                            sourcePort: port, destinationPort: 80, flags: random.next() % 2 == 0 ? 0x02 : 0x10)
                        : PacketBuilder.udp(
                            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: vip,
                            sourcePort: port, destinationPort: 53, payload: [1])
                    let key = DeciderTests.frame(bytes).key
                    let bucket = state.table.bucket(
                        ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: Self.seed))
                    let action =
                        isTCP ? BucketFilterProgram.tcpKind(actions[bucket]) : BucketFilterProgram.udpKind(actions[bucket])
                    guard let (result, out) = filter.classifierVerdict(of: bytes) else {
                        Issue.record("the classifier did not run")
                        return
                    }
                    var expected = bytes
                    var resultExpected = BucketFilterProgram.next
                    if action != 0 {
                        taken += 1
                        switch action {
                        case BucketFilterProgram.dropKind:
                            resultExpected = BucketFilterProgram.shot
                        case BucketFilterProgram.deliverInPlaceKind:
                            resultExpected = BucketFilterProgram.passed
                        case BucketFilterProgram.deliverIntoTAPKind:
                            resultExpected = BucketFilterProgram.redirected
                            expected.replaceSubrange(0..<6, with: Self.macBytes(Self.tapMAC))
                        default:
                            resultExpected = BucketFilterProgram.redirected
                            expected.replaceSubrange(0..<6, with: Self.macBytes(state.bucketMACs[bucket]))
                            expected.replaceSubrange(6..<12, with: Self.macBytes(Self.target.interfaceMAC))
                        }
                    }
                    let ring = filter.verdict(of: bytes) ?? 1
                    // The ring has a frame of a needed bucket unless the classifier took it.
                    let needed = isTCP ? buckets.tcp[bucket] : buckets.udp[bucket]
                    if (result, out) != (resultExpected, expected) || (ring != 0) != needed
                        || (action != 0 && needed), mismatches.count < 5
                    {
                        mismatches.append("\(key) bucket \(bucket) action \(action): \(result) ring \(ring)")
                    }
                }
                #expect(mismatches.isEmpty, "\(vip) \(delivery): \(mismatches)")
                #expect(taken > 10_000)
                let counts = filter.counts
                #expect(counts.delivered + counts.forwarded + counts.classifierDropped == UInt64(taken))
                #expect(delivery != .flood || counts.classifierDropped > 0)  // other nodes' datagrams
                #expect(delivery == .directed || counts.forwarded == 0)

                filter.leaseRuns(until: 1)
                let late = PacketBuilder.tcp(
                    destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.randomClient(like: vip, &random),
                    destination: vip, sourcePort: 1000, destinationPort: 80, flags: 0x10)
                let lateDatagram = PacketBuilder.udp(
                    destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.randomClient(like: vip, &random),
                    destination: vip, sourcePort: 1000, destinationPort: 53, payload: [1])
                for _ in 0..<200 {
                    #expect(filter.classifierVerdict(of: late)?.result == BucketFilterProgram.next)
                    #expect(filter.classifierVerdict(of: lateDatagram)?.result == BucketFilterProgram.next)
                }
            }
        }
    }

    /// A killed lbnode's peers take its buckets when its heartbeat socket refuses their heartbeats, and its
    /// descriptors are released in an order of the kernel's: the classifier acts only while a UDP socket is bound to
    /// the heartbeat address, so it stops the moment the peers can hear the node is gone. On loopback, in this
    /// process's namespace (where the test run looks the socket up), both families.
    @Test(arguments: [IPAddress("127.0.0.1")!, IPAddress("::1")!])
    func theClassifierActsOnlyWhileTheHeartbeatSocketIsThere(heartbeatAddress: IPAddress) throws {
        var random = SeededGenerator(seed: 43)
        let vip = IPAddress("198.18.0.100")!
        let state = Self.state(vip: vip, affinity: .none, random: &random)
        let port = UInt16.random(in: 40000...60000)
        var target = Self.target
        target.heartbeat = (heartbeatAddress, port)
        let filter = try BucketPrefilter(
            shape: BucketFilterShape(state: state, receiveMAC: Self.vmac), deliveringTo: target)
        let buckets = BucketPrefilter.buckets(for: state, tapMAC: Self.tapMAC)
        filter.pass(buckets)
        // A datagram of a bucket this node serves: delivered in place while the socket is there, left alone after.
        let datagram = try #require(
            (0..<1000).lazy.map { _ in
                PacketBuilder.udp(
                    destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.randomClient(like: vip, &random),
                    destination: vip, sourcePort: .random(in: 1024...65535, using: &random), destinationPort: 53,
                    payload: [1])
            }.first { frame in
                let key = DeciderTests.frame(frame).key
                return state.table.owner(
                    ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: Self.seed)) == state.node
            })
        #expect(filter.classifierVerdict(of: datagram)?.result == BucketFilterProgram.next, "no socket yet")
        var socket: DatagramSocket? = try DatagramSocket(bindTo: heartbeatAddress, port: port)
        #expect(socket != nil)
        #expect(filter.classifierVerdict(of: datagram)?.result == BucketFilterProgram.passed)
        socket = nil
        #expect(filter.classifierVerdict(of: datagram)?.result == BucketFilterProgram.next, "the socket closed")
    }

    /// A large table: from 131,072 buckets on the actions start past the 16-bit offset a load can carry (lbnode
    /// crashed at its start), and the classifier still takes exactly the buckets with an action, up to the largest
    /// table a farm may have (its map's value is 8 MiB). A kernel that cannot allocate the map may refuse it, with
    /// an error that leaves the engine delivering every frame; never a crash.
    @Test(arguments: [262_144, 1 << 20])
    func aLargeTableStillGetsItsActions(bucketCount: Int) throws {
        var random = SeededGenerator(seed: 29)
        let vip = IPAddress("198.18.0.100")!
        let state = Self.state(vip: vip, affinity: .none, bucketCount: bucketCount, random: &random)
        let filter: BucketPrefilter
        do {
            filter = try BucketPrefilter(
                shape: BucketFilterShape(state: state, receiveMAC: Self.vmac), deliveringTo: Self.target)
        } catch {
            #expect(error.errno == E2BIG || error.errno == ENOMEM, "\(error)")
            return
        }
        let actions = KernelDeliveryPlan.actions(for: state, tapMAC: Self.tapMAC)
        filter.pass(BucketPrefilter.buckets(for: state, tapMAC: Self.tapMAC))
        var (taken, wrong) = (0, 0)
        for _ in 0..<5_000 {
            let frame = PacketBuilder.tcp(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.randomClient(like: vip, &random),
                destination: vip, sourcePort: .random(in: 1024...65535, using: &random), destinationPort: 80,
                flags: 0x10)
            let bucket = state.table.bucket(
                ofHash: Affinity.none.bucketHash(of: DeciderTests.frame(frame).key, isFragment: false, seed: Self.seed))
            let acts = BucketFilterProgram.tcpKind(actions[bucket]) != 0
            let expected = acts ? BucketFilterProgram.passed : BucketFilterProgram.next
            taken += acts ? 1 : 0
            if filter.classifierVerdict(of: frame)?.result != expected { wrong += 1 }
        }
        #expect(wrong == 0 && taken > 1_000, "\(wrong) of 5000 wrong, \(taken) taken")
    }

    /// A ping flood to the VIP stays out of the ring: the filter lets a burst of pings in, then one a millisecond, and
    /// counts the rest; echo replies and pings to other addresses are not its business.
    @Test(arguments: [IPAddress("198.18.0.100")!, IPAddress("2001:db8::100")!])
    func aPingFloodStaysOutOfTheRing(vip: IPAddress) throws {
        var random = SeededGenerator(seed: 41)
        let filter = try Self.prefilter(for: Self.state(vip: vip, affinity: .none, random: &random))
        let client = vip.isIPv4 ? IPAddress("198.18.1.7")! : IPAddress("2001:db8::7")!
        func icmp(type: UInt8, to destination: IPAddress = vip) -> [UInt8] {
            PacketBuilder.ip(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: destination,
                protocol: vip.isIPv4 ? 1 : 58, payload: [type, 0, 0, 0, 0, 1, 0, 1])
        }
        let request = icmp(type: vip.isIPv4 ? 8 : 128)
        let started = ContinuousClock.now
        var passed = 0
        for _ in 0..<3000 where filter.verdict(of: request) != 0 { passed += 1 }
        let elapsed = (ContinuousClock.now - started).components
        let milliseconds = Int(elapsed.seconds) * 1000 + Int(elapsed.attoseconds / 1_000_000_000_000_000) + 1
        #expect(
            passed >= Int(BucketFilterProgram.echoBurst) && passed <= Int(BucketFilterProgram.echoBurst) + milliseconds)
        #expect(filter.counts.echoDropped == UInt64(3000 - passed))
        #expect(filter.verdict(of: icmp(type: vip.isIPv4 ? 0 : 129)) != 0, "an echo reply is the engine's to decide")
        let elsewhere = vip.isIPv4 ? IPAddress("198.18.0.101")! : IPAddress("2001:db8::101")!
        #expect(filter.verdict(of: icmp(type: vip.isIPv4 ? 8 : 128, to: elsewhere)) == 0, "not the VIP's")
        #expect(filter.counts.echoDropped == UInt64(3000 - passed))
        Thread.sleep(forTimeInterval: 0.02)
        #expect(filter.verdict(of: request) != 0, "the budget refills, a ping a millisecond")
    }

    static func macBytes(_ mac: UInt64) -> [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: mac >> (40 - 8 * $0)) } }

    /// Every other kind of frame: what the classic filter refuses stays out, what the filter cannot decide goes to
    /// the engine, and nothing the engine would deliver, forward or answer is dropped.
    @Test func framesTheFilterCannotDecideReachTheEngine() throws {
        var random = SeededGenerator(seed: 7)
        let vip = IPAddress("198.18.0.100")!
        let client = IPAddress("198.18.1.7")!
        let rules = [
            PortRule(proto: .udp, ports: [53...53], mode: .single(owner: NodeID(2)!)),
            PortRule(proto: .tcp, ports: [25...25], mode: .drop),
            PortRule(proto: nil, ports: [440...450, 8443...8443], mode: .balanced(.single)),
        ]
        let state = Self.state(vip: vip, affinity: .none, rules: rules, random: &random)
        let filter = try Self.prefilter(for: state)
        func tcp(to destination: IPAddress = vip, mac: UInt64 = Self.vmac, port: UInt16, serverPort: UInt16 = 80)
            -> [UInt8]
        {
            PacketBuilder.tcp(
                destinationMAC: mac, sourceMAC: Self.clientMAC, source: client, destination: destination,
                sourcePort: port, destinationPort: serverPort, flags: 0x10)
        }
        let notMine = (1000...).lazy.map { UInt16($0) }.first { port in
            let key = DeciderTests.frame(tcp(port: port)).key
            return !BucketPrefilter.buckets(for: state).tcp[
                state.table.bucket(ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: Self.seed))]
        }!
        let ip = { (number: UInt8, payload: [UInt8], fragment: UInt16, options: [UInt8]) in
            PacketBuilder.ip(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: vip,
                protocol: number, payload: payload, fragment: fragment, options: options)
        }
        let segment = Array(tcp(port: notMine).dropFirst(34))
        let passes: [(String, [UInt8])] = [
            ("an ARP request for the VIP", arp(operation: 1, target: vip)),
            ("a later fragment", ip(6, segment, 0x0010, [])),
            ("a first fragment", ip(6, segment, 0x2000, [])),
            ("IPv4 options", ip(6, segment, 0, [1, 1, 1, 1])),
            ("ICMP", ip(1, [8, 0, 0, 0, 0, 1, 0, 1], 0, [])),
            ("another protocol", ip(47, [0, 0, 0, 0], 0, [])),
            ("a single rule's port", udp(port: notMine, serverPort: 53)),
            ("a drop rule's port", tcp(port: notMine, serverPort: 25)),
            ("a frame too short to decide", Array(tcp(port: notMine).prefix(36))),
        ]
        for (what, bytes) in passes {
            #expect(filter.verdict(of: bytes) == UInt32(KernelFilter.snapshotLength), "\(what)")
        }
        let drops: [(String, [UInt8])] = [
            ("another node's bucket", tcp(port: notMine)),
            ("another MAC", tcp(mac: 0x0200_0000_0009, port: notMine)),
            ("another address", tcp(to: IPAddress("198.18.0.101")!, port: notMine)),
            ("an ARP request for another address", arp(operation: 1, target: IPAddress("198.18.0.101")!)),
            ("an ARP reply", arp(operation: 2, target: vip)),
            ("IPv6 to an IPv4 VIP", tcp(to: IPAddress("2001:db8::100")!, port: notMine)),
        ]
        for (what, bytes) in drops {
            #expect(filter.verdict(of: bytes) == 0, "\(what)")
        }
        // A balanced rule with its own affinity: by the client address alone, on every port of its ranges.
        for serverPort: UInt16 in [440, 445, 450, 8443] {
            let bytes = tcp(port: notMine, serverPort: serverPort)
            let bucket = state.table.bucket(
                ofHash: Affinity.single.bucketHash(
                    of: DeciderTests.frame(bytes).key, isFragment: false, seed: Self.seed))
            let expected = BucketPrefilter.buckets(for: state).tcp[bucket] ? UInt32(KernelFilter.snapshotLength) : 0
            #expect(filter.verdict(of: bytes) == expected, "port \(serverPort)")
        }
        // A bucket this node released: its TCP frames reach the flow table, its datagrams are another node's.
        let released = (0..<state.table.count).first {
            state.releasedBuckets[$0] && state.table.owner(ofBucket: $0) != state.node
        }!
        let port = (1000...).lazy.map { UInt16($0) }.first { port in
            let key = DeciderTests.frame(udp(port: port, serverPort: 80)).key
            return state.table.bucket(ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: Self.seed))
                == released
        }!
        #expect(filter.verdict(of: tcp(port: port)) == UInt32(KernelFilter.snapshotLength))
        #expect(filter.verdict(of: udp(port: port, serverPort: 80)) == 0)

        // Whatever it drops, the engine would have dropped too.
        var flows = DeciderTests.flows()
        for (what, bytes) in passes + drops where filter.verdict(of: bytes) == 0 {
            guard case .frame(let frame) = bytes.withUnsafeBytes({ FrameParser.parse($0) }) else { continue }
            let verdict = Decider.decide(frame, state: state, flows: &flows, now: 0)
            #expect(verdict.isDrop, "\(what): \(verdict)")
        }

        func udp(port: UInt16, serverPort: UInt16) -> [UInt8] {
            PacketBuilder.udp(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: client, destination: vip,
                sourcePort: port, destinationPort: serverPort, payload: [])
        }
        func arp(operation: UInt16, target: IPAddress) -> [UInt8] {
            PacketBuilder.arp(
                operation: operation, ethernetSource: Self.clientMAC, ethernetDestination: 0xFFFF_FFFF_FFFF,
                senderMAC: Self.clientMAC, senderIP: client.ipv4Value!, targetMAC: 0, targetIP: target.ipv4Value!)
        }
    }

    /// An IPv6 VIP: neighbour solicitations pass whatever their address (the engine answers those for the VIP).
    @Test func neighbourSolicitationsReachTheEngine() throws {
        var random = SeededGenerator(seed: 3)
        let vip = IPAddress("2001:db8::100")!
        let filter = try Self.prefilter(for: Self.state(vip: vip, affinity: .none, random: &random))
        let solicitation = PacketBuilder.ip(
            destinationMAC: 0x3333_FF00_0100, sourceMAC: Self.clientMAC, source: IPAddress("2001:db8::7")!,
            destination: IPAddress("ff02::1:ff00:100")!, protocol: 58, payload: [135, 0, 0, 0, 0, 0, 0, 0] + vip.bytes)
        #expect(filter.verdict(of: solicitation) == UInt32(KernelFilter.snapshotLength))
    }

    /// Another mode: every bucket passes (a director forwards them all).
    @Test func aDirectorSeesEveryBucket() {
        var random = SeededGenerator(seed: 5)
        let state = Self.state(vip: IPAddress("198.18.0.100")!, affinity: .none, delivery: .directed, random: &random)
        #expect(BucketPrefilter.buckets(for: state) == .all(state.table.count))
    }
}

extension Verdict {
    var isDrop: Bool {
        if case .drop = self { return true }
        return false
    }
}
