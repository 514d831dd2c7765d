import Hashing
import Testing

@testable import TapEngine

/// The per-frame decision, on frames from the packet builder and a real flow table (no port needed: the decision is
/// pure but for the flow table).
struct DeciderTests {
    static let vip = IPAddress("198.18.0.100")!
    static let vmac: UInt64 = 0x0242_C612_0064
    static let seed = FarmSeed(farmName: "decider")
    static let view = try! MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!])
    static let table = try! TableBuilder(seed: seed, bucketCount: 64).build(view, generation: 1)
    static let macs: [UInt16: UInt64] = [1: 0x0200_0000_0001, 2: 0x0200_0000_0002]

    static func state(
        node: UInt16, delivery: Delivery = .flood, rules: [PortRule] = [], handover: [Int] = [],
        released: [Int] = [], table: BucketTable = table
    ) -> EngineState {
        var taking = Array(repeating: false, count: table.count)
        for bucket in handover { taking[bucket] = true }
        var giving = Array(repeating: false, count: table.count)
        for bucket in released { giving[bucket] = true }
        return EngineState(
            generation: 1, node: NodeID(rawValue: node)!, seed: seed, vip: vip, virtualMAC: vmac,
            table: table, rules: rules, delivery: delivery, isARPLeader: node == 1, isDirector: node == 1,
            handoverBuckets: taking, releasedBuckets: giving, nodeMACs: macs)
    }

    static func frame(_ bytes: [UInt8]) -> Frame {
        guard case .frame(let frame) = bytes.withUnsafeBytes({ FrameParser.parse($0) }) else {
            preconditionFailure("golden frame did not parse")
        }
        return frame
    }

    static func tcp(port: UInt16, flags: UInt8, serverPort: UInt16 = 80) -> Frame {
        frame(
            PacketBuilder.tcp(
                destinationMAC: vmac, sourceMAC: 0x0200_0000_0107, source: IPAddress("198.18.1.7")!,
                destination: vip, sourcePort: port, destinationPort: serverPort, flags: flags))
    }

    static func udp(port: UInt16, to destination: IPAddress = vip, serverPort: UInt16 = 53) -> Frame {
        frame(
            PacketBuilder.udp(
                destinationMAC: vmac, sourceMAC: 0x0200_0000_0107, source: IPAddress("198.18.1.7")!,
                destination: destination, sourcePort: port, destinationPort: serverPort, payload: []))
    }

    static func owner(of frame: Frame, table: BucketTable = table) -> UInt16 {
        table.owner(ofHash: Affinity.none.bucketHash(of: frame.key, isFragment: false, seed: seed))!.rawValue
    }

    static func bucket(of frame: Frame) -> Int {
        table.bucket(ofHash: Affinity.none.bucketHash(of: frame.key, isFragment: false, seed: seed))
    }

    /// A client port whose flow lands on `node`.
    static func port(ownedBy node: UInt16, tcp: Bool = true) -> UInt16 {
        (1000...).first { owner(of: tcp ? Self.tcp(port: UInt16($0), flags: 2) : udp(port: UInt16($0))) == node }
            .map(UInt16.init)!
    }

    static func flows() -> FlowTable { FlowTable(capacity: 1024, idleTimeout: 60_000, closingTimeout: 1000, seed: 1) }

    @Test func ownerDeliversOthersDropInFloodMode() {
        var flows = Self.flows()
        let mine = Self.udp(port: Self.port(ownedBy: 1, tcp: false))
        let theirs = Self.udp(port: Self.port(ownedBy: 2, tcp: false))
        #expect(Decider.decide(mine, state: Self.state(node: 1), flows: &flows, now: 0) == .deliver)
        #expect(Decider.decide(theirs, state: Self.state(node: 1), flows: &flows, now: 0) == .drop(.notOwner))
        #expect(Decider.decide(theirs, state: Self.state(node: 2), flows: &flows, now: 0) == .deliver)
        #expect(flows.count == 0)  // datagrams are not tracked
    }

    @Test func directorForwardsToTheOwnersMacAndOthersIgnoreTheVirtualMac() {
        var flows = Self.flows()
        let theirs = Self.udp(port: Self.port(ownedBy: 2, tcp: false))
        #expect(
            Decider.decide(theirs, state: Self.state(node: 1, delivery: .directed), flows: &flows, now: 0)
                == .forward(Self.macs[2]!))
        #expect(
            Decider.decide(theirs, state: Self.state(node: 2, delivery: .directed), flows: &flows, now: 0)
                == .drop(.notDirector))
    }

    @Test func onlyTheArpLeaderAnswersForTheVip() {
        var flows = Self.flows()
        let request = Self.frame(
            PacketBuilder.arp(
                operation: 1, ethernetSource: 0x0200_0000_0107,
                ethernetDestination: 0xFFFF_FFFF_FFFF, senderMAC: 0x0200_0000_0107, senderIP: 0xC612_0107, targetMAC: 0,
                targetIP: Self.vip.ipv4Value!))
        let other = Self.frame(
            PacketBuilder.arp(
                operation: 1, ethernetSource: 0x0200_0000_0107,
                ethernetDestination: 0xFFFF_FFFF_FFFF, senderMAC: 0x0200_0000_0107, senderIP: 0xC612_0107, targetMAC: 0,
                targetIP: 0xC612_0001))
        #expect(Decider.decide(request, state: Self.state(node: 1), flows: &flows, now: 0) == .answer)
        #expect(Decider.decide(request, state: Self.state(node: 2), flows: &flows, now: 0) == .drop(.notARPLeader))
        #expect(Decider.decide(other, state: Self.state(node: 1), flows: &flows, now: 0) == .drop(.otherARP))
    }

    @Test func framesForOtherAddressesAreDropped() {
        var flows = Self.flows()
        let stray = Self.udp(port: 1000, to: IPAddress("198.18.0.99")!)
        #expect(Decider.decide(stray, state: Self.state(node: 1), flows: &flows, now: 0) == .drop(.notForVIP))
    }

    @Test func rulesFirstMatchWins() {
        var flows = Self.flows()
        let rules = [
            PortRule(proto: .udp, ports: [53...53], mode: .drop),
            PortRule(proto: .tcp, ports: [22...22], mode: .single(owner: NodeID(2)!)),
            PortRule(proto: nil, ports: [], mode: .single(owner: NodeID(1)!)),
        ]
        let dns = Self.udp(port: 1000)
        let ssh = Self.tcp(port: 1000, flags: 2, serverPort: 22)
        let web = Self.tcp(port: 1000, flags: 2, serverPort: 80)
        #expect(
            Decider.decide(dns, state: Self.state(node: 1, rules: rules), flows: &flows, now: 0) == .drop(.ruleDrop))
        #expect(
            Decider.decide(ssh, state: Self.state(node: 1, rules: rules), flows: &flows, now: 0) == .drop(.notOwner))
        #expect(Decider.decide(ssh, state: Self.state(node: 2, rules: rules), flows: &flows, now: 0) == .deliver)
        #expect(Decider.decide(web, state: Self.state(node: 1, rules: rules), flows: &flows, now: 0) == .deliver)
    }

    /// A datagram in fragments to a `single` or a `drop` port: its later fragments, which have no ports, go where
    /// its first went, on every node; decided alone they would follow the default rule and the addresses' bucket.
    @Test func laterFragmentsFollowTheirFirstFragmentsPortRule() {
        func fragment(port: UInt16, offset: UInt16, identification: UInt16) -> Frame {
            let udp =
                [0x9C, 0x40] + [UInt8(port >> 8), UInt8(port & 0xFF)] + [0, 100, 0, 0]
                + [UInt8](repeating: 7, count: 16)
            return Self.frame(
                PacketBuilder.ip(
                    destinationMAC: Self.vmac, sourceMAC: 0x0200_0000_0107, source: IPAddress("198.18.1.7")!,
                    destination: Self.vip, protocol: 17, payload: offset == 0 ? udp : [UInt8](repeating: 7, count: 16),
                    fragment: offset == 0 ? 0x2000 : offset / 8, identification: identification))
        }
        let first = fragment(port: 5000, offset: 0, identification: 1)
        let alone = Self.table.owner(
            ofHash: Affinity.none.bucketHash(of: first.key, isFragment: true, seed: Self.seed))!
        let other: UInt16 = alone.rawValue == 1 ? 2 : 1
        let rules = [
            PortRule(proto: .udp, ports: [53...53], mode: .drop),
            PortRule(proto: .udp, ports: [5000...5000], mode: .single(owner: NodeID(rawValue: other)!)),
        ]
        for node: UInt16 in [1, 2] {
            var flows = Self.flows()
            var fragments = FragmentTable()
            let state = Self.state(node: node, rules: rules)
            func decide(_ frame: Frame, now: UInt32 = 10) -> Verdict {
                Decider.decide(frame, state: state, flows: &flows, fragments: &fragments, now: now)
            }
            let owner: Verdict = node == other ? .deliver : .drop(.notOwner)
            let notOwner: Verdict = node == alone.rawValue ? .deliver : .drop(.notOwner)
            #expect(decide(first) == owner)
            #expect(decide(fragment(port: 5000, offset: 24, identification: 1)) == owner)
            #expect(decide(fragment(port: 5000, offset: 48, identification: 1)) == owner)
            // Another datagram (another identification) whose first fragment was not seen: decided alone.
            #expect(decide(fragment(port: 5000, offset: 24, identification: 2)) == notOwner)
            // A first fragment's verdict holds for the lifetime only.
            #expect(
                decide(fragment(port: 5000, offset: 72, identification: 1), now: 10 + FragmentTable.lifetime)
                    == notOwner)
            // A dropped port: every fragment dropped.
            #expect(decide(fragment(port: 53, offset: 0, identification: 3)) == .drop(.ruleDrop))
            #expect(decide(fragment(port: 53, offset: 24, identification: 3)) == .drop(.ruleDrop))
        }
    }

    @Test func newOwnerInAHandoverTakesOnlyNewConnections() {
        var flows = Self.flows()
        let port = Self.port(ownedBy: 1)
        let syn = Self.tcp(port: port, flags: 0x02)
        let ack = Self.tcp(port: port, flags: 0x10)
        let state = Self.state(node: 1, handover: [Self.bucket(of: syn)])
        // A segment of a connection this node never saw is the old owner's: not ours.
        #expect(Decider.decide(ack, state: state, flows: &flows, now: 0) == .drop(.handoverEstablished))
        // A new connection: ours from its SYN on.
        #expect(Decider.decide(syn, state: state, flows: &flows, now: 1) == .deliver)
        #expect(Decider.decide(ack, state: state, flows: &flows, now: 2) == .deliver)
        #expect(flows.count == 1)
    }

    /// Flood delivery, a bucket taken from node 2 while it restarts: its established connections go to its MAC (its
    /// kernel answers them), new ones are this node's; the same bucket taken from a live node (no previous owner set)
    /// drops them, as that node serves them itself. (`other`: another connection in the same bucket.)
    @Test func aConnectionOfANodeStoppedForARestartGoesToItsMAC() {
        var flows = Self.flows()
        let port = Self.port(ownedBy: 1)
        let syn = Self.tcp(port: port, flags: 0x02)
        let ack = Self.tcp(port: port, flags: 0x10)
        let other = Self.tcp(
            port: (1000...60000).map(UInt16.init).first {
                $0 != port && Self.bucket(of: Self.tcp(port: $0, flags: 0x10)) == Self.bucket(of: syn)
            }!, flags: 0x10)
        var state = Self.state(node: 1, handover: [Self.bucket(of: syn)])
        #expect(Decider.decide(ack, state: state, flows: &flows, now: 0) == .drop(.handoverEstablished))
        state.previousOwners[Self.bucket(of: syn)] = 2
        #expect(Decider.decide(ack, state: state, flows: &flows, now: 0) == .forward(Self.macs[2]!))
        #expect(Decider.decide(syn, state: state, flows: &flows, now: 1) == .deliver)
        #expect(Decider.decide(ack, state: state, flows: &flows, now: 2) == .deliver)
        // A first owner whose MAC is not known: dropped, as before.
        state.nodeMACs[2] = nil
        #expect(Decider.decide(other, state: state, flows: &flows, now: 3) == .drop(.handoverEstablished))
    }

    /// Release before acquire holds only what this change takes from a live node, and never the connections this node
    /// already has: a bucket it kept (marked from an earlier move) is served, and its own connection in a bucket it
    /// takes back is delivered while the new ones wait.
    @Test func aHoldWaitsOnlyForWhatItTakesAndNeverForThisNodesOwnConnections() {
        var flows = Self.flows()
        let port = Self.port(ownedBy: 1)
        let syn = Self.tcp(port: port, flags: 0x02)
        let kept = Self.udp(
            port: (1000...60000).map(UInt16.init).first {
                Self.owner(of: Self.udp(port: $0)) == 1 && Self.bucket(of: Self.udp(port: $0)) != Self.bucket(of: syn)
            }!)
        // This node took the connection's bucket earlier (a join) and the connection started here.
        #expect(
            Decider.decide(syn, state: Self.state(node: 1, handover: [Self.bucket(of: syn)]), flows: &flows, now: 0)
                == .deliver)
        // A new change holds the connection's bucket (taken again) but not the UDP flow's (marked, not taken now).
        var held = Self.state(node: 1, handover: [Self.bucket(of: syn), Self.bucket(of: kept)])
        var taken = Array(repeating: false, count: Self.table.count)
        taken[Self.bucket(of: syn)] = true
        held.hold(taken)
        #expect(Self.bucket(of: kept) != Self.bucket(of: syn))
        #expect(Decider.decide(Self.tcp(port: port, flags: 0x10), state: held, flows: &flows, now: 1) == .deliver)
        #expect(Decider.decide(kept, state: held, flows: &flows, now: 1) == .deliver)
        // What is new in the held bucket waits: another connection's SYN, a UDP flow.
        let sameBucket = (1000...60000).map(UInt16.init).filter { $0 != port }
        let newSyn = Self.tcp(
            port: sameBucket.first { Self.bucket(of: Self.tcp(port: $0, flags: 0x02)) == Self.bucket(of: syn) }!,
            flags: 0x02)
        let newUDP = Self.udp(port: sameBucket.first { Self.bucket(of: Self.udp(port: $0)) == Self.bucket(of: syn) }!)
        #expect(Decider.decide(newSyn, state: held, flows: &flows, now: 1) == .drop(.handoverPending))
        #expect(Decider.decide(newUDP, state: held, flows: &flows, now: 1) == .drop(.handoverPending))
    }

    @Test func oldOwnerKeepsItsEstablishedConnectionsAfterTheBucketMoves() throws {
        var flows = Self.flows()
        let port = Self.port(ownedBy: 1)
        let syn = Self.tcp(port: port, flags: 0x02)
        #expect(Decider.decide(syn, state: Self.state(node: 1), flows: &flows, now: 0) == .deliver)
        // Node 2 alone in the view now: every bucket moved to it.
        let moved = try TableBuilder(seed: Self.seed, bucketCount: 64).build(
            MembershipView(equalWeights: [NodeID(2)!]), generation: 2)
        let after = Self.state(node: 1, released: Array(0..<64), table: moved)
        #expect(Decider.decide(Self.tcp(port: port, flags: 0x10), state: after, flows: &flows, now: 5) == .deliver)
        // Once the handover is over (not released any more), the connection is no longer this node's.
        #expect(
            Decider.decide(
                Self.tcp(port: port, flags: 0x10), state: Self.state(node: 1, table: moved),
                flows: &flows, now: 6) == .drop(.notOwner))
        #expect(
            Decider.decide(Self.tcp(port: port &+ 1, flags: 0x02), state: after, flows: &flows, now: 5)
                == .drop(.notOwner))
        // FIN: kept for the last ACKs, then gone after the closing timeout.
        #expect(Decider.decide(Self.tcp(port: port, flags: 0x11), state: after, flows: &flows, now: 10) == .deliver)
        #expect(Decider.decide(Self.tcp(port: port, flags: 0x10), state: after, flows: &flows, now: 500) == .deliver)
        #expect(
            Decider.decide(Self.tcp(port: port, flags: 0x10), state: after, flows: &flows, now: 2000)
                == .drop(.notOwner))
    }

    @Test func resetEndsAConnectionAtOnce() {
        var flows = Self.flows()
        let port = Self.port(ownedBy: 1)
        #expect(
            Decider.decide(Self.tcp(port: port, flags: 0x02), state: Self.state(node: 1), flows: &flows, now: 0)
                == .deliver)
        #expect(
            Decider.decide(Self.tcp(port: port, flags: 0x04), state: Self.state(node: 1), flows: &flows, now: 1)
                == .deliver)
        #expect(flows.count == 0)
    }

    @Test func anEmptyViewOwnsNothing() throws {
        var flows = Self.flows()
        let empty = try BucketTable.unowned(count: 64)
        #expect(
            Decider.decide(Self.udp(port: 1), state: Self.state(node: 1, table: empty), flows: &flows, now: 0)
                == .drop(.noOwner))
    }

    /// Node 1 directing (directed delivery), with the bucket of `port` in a handover from node `previous` (node 3's
    /// MAC known too).
    static func directorInAHandover(of port: UInt16, from previous: UInt16) -> EngineState {
        var previousOwners = [UInt16](repeating: 0, count: 64)
        previousOwners[bucket(of: tcp(port: port, flags: 0x02))] = previous
        return EngineState(
            generation: 1, node: NodeID(1)!, seed: seed, vip: vip, virtualMAC: vmac, table: table, delivery: .directed,
            isARPLeader: true, isDirector: true, previousOwners: previousOwners,
            nodeMACs: macs.merging([3: 0x0200_0000_0003]) { $1 })
    }

    @Test func directorSendsEstablishedConnectionsToThePreviousOwnerDuringAHandover() throws {
        var flows = Self.flows()
        // Node 1 directs; the bucket of `port` now belongs to node 2 and is being handed over from node 3.
        let port = Self.port(ownedBy: 2)
        let state = Self.directorInAHandover(of: port, from: 3)
        // A connection that started before the handover: its segments go to the previous owner.
        #expect(
            Decider.decide(Self.tcp(port: port, flags: 0x10), state: state, flows: &flows, now: 0)
                == .forward(0x0200_0000_0003))
        // A new connection (here reusing the client port) goes to the new owner, and stays there.
        #expect(
            Decider.decide(Self.tcp(port: port, flags: 0x02), state: state, flows: &flows, now: 2)
                == .forward(Self.macs[2]!))
        #expect(
            Decider.decide(Self.tcp(port: port, flags: 0x10), state: state, flows: &flows, now: 3)
                == .forward(Self.macs[2]!))
        // Datagrams follow the table at once.
        #expect(Decider.decide(Self.udp(port: port), state: state, flows: &flows, now: 4) == .forward(Self.macs[2]!))
    }

    /// Node 1 directs after the director before it died, within the handover window of a join that moved a bucket
    /// from node 1 to node 2. Its own connections there it learnt from its kernel; one it does not know was opened on
    /// node 2 while the other director directed, and goes there, not to node 1's kernel, which would reset it.
    @Test func aNewDirectorSendsAConnectionItDoesNotHaveInABucketItReleasedToTheOwner() throws {
        var flows = Self.flows()
        let port = Self.port(ownedBy: 2)
        let state = Self.directorInAHandover(of: port, from: 1)
        let segment = Self.tcp(port: port, flags: 0x10)
        #expect(Decider.decide(segment, state: state, flows: &flows, now: 0) == .forward(Self.macs[2]!))
        flows.insert(segment.key, now: 0, value: 1, confirm: true)
        #expect(Decider.decide(segment, state: state, flows: &flows, now: 1) == .deliver)
    }

    /// A TCP segment sent from `sourceMAC` to `destinationMAC` (relay mode: clients send to a node's own MAC).
    static func relayTCP(port: UInt16, flags: UInt8, from sourceMAC: UInt64, to destinationMAC: UInt64) -> Frame {
        frame(
            PacketBuilder.tcp(
                destinationMAC: destinationMAC, sourceMAC: sourceMAC, source: IPAddress("198.18.1.7")!,
                destination: vip, sourcePort: port, destinationPort: 80, flags: flags))
    }

    @Test func inRelayModeANodeTakesFramesForItsOwnMACAndDeliversWhatAPeerRelayed() {
        var flows = Self.flows()
        let client: UInt64 = 0x0200_0000_0107
        let theirs = Self.port(ownedBy: 2)
        let director = Self.state(node: 1, delivery: .relay)
        // The director relays node 2's connection from its own MAC; node 2 delivers it.
        #expect(
            Decider.decide(
                Self.relayTCP(port: theirs, flags: 0x02, from: client, to: Self.macs[1]!), state: director,
                flows: &flows, now: 0) == .forward(Self.macs[2]!))
        let node2 = Self.state(node: 2, delivery: .relay)
        var node2Flows = Self.flows()
        let relayed = Self.relayTCP(port: theirs, flags: 0x10, from: Self.macs[1]!, to: Self.macs[2]!)
        #expect(Decider.decide(relayed, state: node2, flows: &node2Flows, now: 1) == .deliver)
        // Node 2 remembers the connection it serves, so that it keeps it once it releases the bucket.
        #expect(node2Flows.value(of: relayed.key, now: 1) == 2)
        // A frame for another node's MAC (a switch flooded it) is not this node's business.
        #expect(
            Decider.decide(
                Self.relayTCP(port: theirs, flags: 0x10, from: client, to: Self.macs[1]!), state: node2,
                flows: &flows, now: 2) == .drop(.otherHost))
    }

    @Test func inRelayModeAPreviousOwnerPassesAConnectionItDoesNotHaveOnToTheOwner() {
        var flows = Self.flows()
        // Node 2 released the bucket of `port` (now node 1's) and was sent an established segment it does not have:
        // it started on node 1, so node 2 passes it there; one it has, it keeps.
        let port = Self.port(ownedBy: 1)
        let bucket = Self.bucket(of: Self.tcp(port: port, flags: 0x02))
        let node2 = Self.state(node: 2, delivery: .relay, released: [bucket])
        let segment = Self.relayTCP(port: port, flags: 0x10, from: Self.macs[1]!, to: Self.macs[2]!)
        #expect(Decider.decide(segment, state: node2, flows: &flows, now: 0) == .forward(Self.macs[1]!))
        flows.insert(segment.key, now: 0, value: 2, confirm: true)
        #expect(Decider.decide(segment, state: node2, flows: &flows, now: 1) == .deliver)
    }

    /// A frame from a peer's MAC still meets the port rules: a host that spoofs node 1's MAC toward node 2 reaches
    /// neither a `drop` port nor a `single` port node 2 does not own (a peer never relays those to it).
    @Test func inRelayModeAFrameFromAPeersMACStillMeetsThePortRules() {
        var flows = Self.flows()
        let rules = [
            PortRule(proto: .tcp, ports: [22...22], mode: .drop),
            PortRule(proto: .tcp, ports: [25...25], mode: .single(owner: NodeID(1)!)),
            PortRule(proto: .tcp, ports: [26...26], mode: .single(owner: NodeID(2)!)),
        ]
        let node2 = Self.state(node: 2, delivery: .relay, rules: rules)
        func fromNode1(toPort port: UInt16) -> Frame {
            Self.frame(
                PacketBuilder.tcp(
                    destinationMAC: Self.macs[2]!, sourceMAC: Self.macs[1]!, source: IPAddress("198.18.1.7")!,
                    destination: Self.vip, sourcePort: 1000, destinationPort: port, flags: 0x02))
        }
        #expect(Decider.decide(fromNode1(toPort: 22), state: node2, flows: &flows, now: 0) == .drop(.ruleDrop))
        #expect(Decider.decide(fromNode1(toPort: 25), state: node2, flows: &flows, now: 0) == .drop(.notOwner))
        #expect(Decider.decide(fromNode1(toPort: 26), state: node2, flows: &flows, now: 0) == .deliver)
    }
}
