import Foundation
import Hashing
import RouteSetup
import Testing

@testable import TapEngine
@testable import Testbed

/// Privileged tests need root; under CI (`CI` set) they always run, so a missing privilege fails there.
let privileged = Testing.ConditionTrait.enabled(
    if: geteuid() == 0 || ProcessInfo.processInfo.environment["CI"] != nil,
    "needs root (network namespaces, TAP devices, packet sockets)")

/// Two servers running the real engine on a testbed (a bridge, real TAP devices, real UDP sockets), a static
/// two-node table, and a client that sends from many addresses and ports.
@Suite(privileged, .serialized)
struct EngineEndToEndTests {
    static let vip = IPAddress("198.18.0.100")!
    static let seed = FarmSeed(farmName: "e2e")
    static let port: UInt16 = 9000

    /// The farm: testbed, setup on each server, an engine and a UDP sink per server; all removed by `stop`.
    final class Farm {
        let testbed: VirtualNetwork
        let engines: [Engine]
        let sinks: [DatagramSocket]
        let table: BucketTable
        let vmac: UInt64
        let stateDirectory = NSTemporaryDirectory() + "vipfarm-e2e-\(UInt32.random(in: 0...UInt32.max))"

        let vip: IPAddress

        init(
            delivery: Delivery, switchFloods: Bool = true, vip: IPAddress = EngineEndToEndTests.vip,
            injection: EngineConfiguration.Injection = .ioUring, kernelDelivery: Bool = false
        ) throws {
            self.vip = vip
            testbed = try VirtualNetwork(
                .init(servers: 2, clients: 1, unknownUnicastFlooding: switchFloods, ipv6: !vip.isIPv4))
            let vipPrefix = IPPrefix(bytes: vip.bytes, prefixLength: vip.bytes.count * 8)!
            let mac = HardwareAddress(bytes: [0x02, 0x42] + vipPrefix.bytes.suffix(4))!
            vmac = macValue(mac.bytes)
            table = try TableBuilder(seed: EngineEndToEndTests.seed).build(
                MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!]), generation: 1)
            var engines: [Engine] = []
            var sinks: [DatagramSocket] = []
            do {
                for (index, server) in testbed.servers.enumerated() {
                    let node = NodeID(index + 1)!
                    let setup = ServerSetup(interface: "eth0", vip: vipPrefix, virtualMAC: mac)
                    let state = EngineState(
                        generation: 1, node: node, seed: EngineEndToEndTests.seed,
                        vip: vip, virtualMAC: vmac, table: table, delivery: delivery,
                        isARPLeader: index == 0, isDirector: index == 0,
                        nodeMACs: Dictionary(
                            uniqueKeysWithValues: testbed.servers.enumerated().map {
                                (UInt16($0.offset + 1), $0.element.macValue)
                            }))
                    var configuration = EngineConfiguration(
                        interface: "eth0", interfaceMAC: server.macValue,
                        tapName: "lb0")
                    configuration.injection = injection
                    // The engine's own path, unless the test is about the kernel's: it would take the UDP frames.
                    configuration.kernelDelivery = kernelDelivery
                    let directory = stateDirectory + "/\(index)"
                    let made: Result<(Engine, DatagramSocket), Error> = try server.namespace.run {
                        () throws(NetlinkError) in
                        Result {
                            try setup.applySetup(stateDirectory: directory)
                            let engine = try Engine(configuration: configuration, state: state)
                            let sink = try DatagramSocket(
                                bindTo: vip, port: EngineEndToEndTests.port,
                                receiveBufferBytes: 16 << 20)
                            return (engine, sink)
                        }
                    }
                    let (engine, sink) = try made.get()
                    engines.append(engine)
                    sinks.append(sink)
                }
            } catch {
                try? FileManager.default.removeItem(atPath: stateDirectory)
                throw error
            }
            self.engines = engines
            self.sinks = sinks
            for engine in engines { engine.start() }
            // Taking the ARP leader (and, directed, the director) role: announce, so switches learn the virtual MAC.
            engines[0].announce()
            Thread.sleep(forTimeInterval: 0.05)
        }

        func stop() {
            for engine in engines { engine.stop() }
            testbed.down()
            try? FileManager.default.removeItem(atPath: stateDirectory)
        }

        /// The datagram ids each sink received, until none came for `quietMilliseconds`.
        func drain(quietMilliseconds: Int32 = 500) throws -> [[UInt32]] {
            try sinks.map { sink in
                var ids: [UInt32] = []
                while let datagram = try sink.receive(timeoutMilliseconds: quietMilliseconds) {
                    ids.append(datagram.prefix(4).reduce(0) { $0 << 8 | UInt32($1) })
                }
                return ids
            }
        }

        /// Runs `body` in the client's namespace with a packet socket on its eth0.
        func fromClient(_ body: (FrameSender, VirtualNetwork.Host) throws -> Void) throws {
            let client = testbed.clients[0]
            let result: Result<Void, Error> = try client.namespace.run { () throws(NetlinkError) in
                Result { try body(try FrameSender(interface: "eth0"), client) }
            }
            try result.get()
        }
    }

    /// A client at 198.18.2-3.x with port 10000+i: datagram `i`.
    static func datagram(_ index: Int, to vmac: UInt64, from clientMAC: UInt64) -> (FlowKey, [UInt8]) {
        let client = IPAddress(ipv4: 0xC612_0200 + UInt32(index % 500))
        let key = FlowKey(client: client, clientPort: UInt16(10000 + index), serverPort: port, proto: .udp)
        let id = UInt32(index)
        let payload = [UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)]
        return (
            key,
            PacketBuilder.udp(
                destinationMAC: vmac, sourceMAC: clientMAC, source: client, destination: vip,
                sourcePort: key.clientPort, destinationPort: port, payload: payload + Array(repeating: 0, count: 18))
        )
    }

    /// Sends `count` crafted datagrams (and a garbage frame every 100) from the client, plus one from the client's
    /// own stack after ARP; returns the ids each server's socket received and the ids each should have.
    static func exchange(_ farm: Farm, count: Int) throws -> (received: [[UInt32]], expected: [[UInt32]]) {
        var expected: [[UInt32]] = [[], []]
        try farm.fromClient { sender, client in
            // The client's own stack asks for the VIP by ARP and sends one datagram, as any client would.
            try DatagramSocket(bindTo: client.ip, port: 5000)
                .send([0xFF, 0xFF, 0xFF, 0xFF], to: Self.vip, port: Self.port)
            let clientMAC = client.macValue
            for index in 0..<count {
                let (key, frame) = Self.datagram(index, to: farm.vmac, from: clientMAC)
                let owner = farm.table.owner(
                    ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: Self.seed))!
                expected[Int(owner.rawValue) - 1].append(UInt32(index))
                try sender.send(frame)
                // Garbage to the VIP every 100 frames: an IPv4 header with version 5.
                if index % 100 == 0 {
                    var bad = frame
                    bad[14] = 0x55
                    try sender.send(bad)
                }
            }
        }
        return (try farm.drain(), expected)
    }

    /// Every crafted datagram reached its owner's socket exactly once, and the client's own one reached one socket.
    static func expectExactlyOnce(_ received: [[UInt32]], _ expected: [[UInt32]], count: Int) {
        #expect(received.map { $0.filter { $0 == .max }.count }.reduce(0, +) == 1)
        let crafted = received.map { $0.filter { $0 != .max } }
        #expect(crafted[0].sorted() == expected[0])
        #expect(crafted[1].sorted() == expected[1])
        #expect(crafted[0].count + crafted[1].count == count)
        #expect(min(crafted[0].count, crafted[1].count) > count / 3)  // both nodes took a share
    }

    @Test(arguments: EngineConfiguration.Injection.allCases)
    func floodDeliversEveryDatagramOnceToItsOwnerAndOneNodeAnswersArp(
        injection: EngineConfiguration.Injection
    ) throws {
        let farm = try Farm(delivery: .flood, injection: injection)
        defer { farm.stop() }
        let count = 3000
        let (received, expected) = try Self.exchange(farm, count: count)
        Self.expectExactlyOnce(received, expected, count: count)

        let counters = farm.engines.map(\.counters)
        #expect(counters[0].answered >= 1)
        #expect(counters[1].answered == 0)
        #expect(counters[1].dropped(.notARPLeader) >= 1)
        #expect(counters.allSatisfy { $0.dropped(.badIPv4Header) == UInt64(count / 100) })
        #expect(counters.allSatisfy { $0.dropped(.tapWriteFailed) == 0 })
        #expect(counters[0].delivered + counters[1].delivered == UInt64(count + 1))
    }

    @Test func directedWorksOnASwitchThatNeverFloods() throws {
        let farm = try Farm(delivery: .directed, switchFloods: false)
        defer { farm.stop() }
        let count = 3000
        let (received, expected) = try Self.exchange(farm, count: count)
        Self.expectExactlyOnce(received, expected, count: count)

        let counters = farm.engines.map(\.counters)
        // The director read every client frame, delivered its own and forwarded the rest to node 2's MAC, whose
        // kernel delivered them directly: node 2's engine saw no client frame for the virtual MAC.
        #expect(counters[0].delivered + counters[0].forwarded == UInt64(count + 1))
        #expect(counters[0].forwarded == UInt64(expected[1].count) + (received[1].contains(.max) ? 1 : 0))
        #expect(counters[1].delivered == 0)
        #expect(counters[0].dropped(.badIPv4Header) == UInt64(count / 100))
    }

    /// With kernel delivery (lbnode's default) the classifier decides every UDP frame itself: each datagram reaches
    /// its owner's socket once, the other node's kernel drops it (flood) or the director's forwards it to its owner
    /// (directed), and no datagram the classifier can decide enters an engine's ring; garbage still goes to the
    /// engine, which counts it.
    @Test(arguments: [Delivery.flood, .directed])
    func theKernelDeliversEveryDatagramOnceWithoutTheEngine(delivery: Delivery) throws {
        let farm = try Farm(delivery: delivery, kernelDelivery: true)
        defer { farm.stop() }
        #expect(farm.engines.allSatisfy { $0.prefilterStatus.kernelDelivery })
        let count = 3000
        let (received, expected) = try Self.exchange(farm, count: count)
        Self.expectExactlyOnce(received, expected, count: count)

        let counters = farm.engines.map(\.counters)
        let kernel = farm.engines.map(\.prefilterStatus)
        #expect(counters.allSatisfy { $0.delivered + $0.forwarded == 0 }, "\(counters)")
        let deliveredInKernel = kernel.map(\.deliveredInKernel).reduce(0, +)
        #expect(deliveredInKernel == UInt64(count + 1) - (delivery == .directed ? kernel[0].forwardedInKernel : 0))
        if delivery == .flood {
            // Each node's kernel dropped the other's share.
            #expect(kernel[0].droppedInKernel == UInt64(expected[1].count) + (received[1].contains(.max) ? 1 : 0))
            #expect(kernel[1].droppedInKernel == UInt64(expected[0].count) + (received[0].contains(.max) ? 1 : 0))
            #expect(counters.allSatisfy { $0.dropped(.badIPv4Header) == UInt64(count / 100) })
        } else {
            #expect(kernel[0].forwardedInKernel == UInt64(expected[1].count) + (received[1].contains(.max) ? 1 : 0))
            #expect(kernel.allSatisfy { $0.droppedInKernel == 0 })
            #expect(counters[0].dropped(.badIPv4Header) == UInt64(count / 100))
        }
    }

    @Test func floodCannotWorkOnASwitchThatNeverFloods() throws {
        let farm = try Farm(delivery: .flood, switchFloods: false)
        defer { farm.stop() }
        let (received, _) = try Self.exchange(farm, count: 200)
        // Nothing ever sends from the virtual MAC in flood mode, so the switch never learns it and drops its frames.
        #expect(received.allSatisfy { $0.isEmpty })
        #expect(farm.engines.allSatisfy { $0.counters.delivered == 0 })
    }

    @Test func ipv6VipIsFoundByNeighbourDiscoveryAndServed() throws {
        let vip6 = IPAddress("2001:2::100")!
        let farm = try Farm(delivery: .flood, vip: vip6)
        defer { farm.stop() }
        // The client's own stack: a neighbour solicitation for the VIP, answered by the leader with the virtual MAC,
        // then datagrams from 40 ports, each to be delivered once, by its owner.
        var expected: [[UInt32]] = [[], []]
        try farm.fromClient { _, client in
            let source = IPAddress(bytes: client.address6!.bytes)!
            for index in 0..<40 {
                let port = UInt16(20000 + index)
                let key = FlowKey(client: source, clientPort: port, serverPort: Self.port, proto: .udp)
                let owner = farm.table.owner(
                    ofHash: Affinity.none.bucketHash(of: key, isFragment: false, seed: Self.seed))!
                expected[Int(owner.rawValue) - 1].append(UInt32(index))
                let id = UInt32(index)
                try DatagramSocket(bindTo: source, port: port).send(
                    [UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)], to: vip6,
                    port: Self.port)
            }
        }
        let received = try farm.drain()
        #expect(received[0].sorted() == expected[0])
        #expect(received[1].sorted() == expected[1])
        #expect(farm.engines[0].counters.answered >= 1)
        #expect(farm.engines[1].counters.answered == 0)
    }

    @Test func aSwappedTableTakesEffectAtTheNextBatch() throws {
        let farm = try Farm(delivery: .flood)
        defer { farm.stop() }
        // Node 1 leaves the view: node 2 owns every bucket from generation 2 on.
        let table = try TableBuilder(seed: Self.seed).build(MembershipView(equalWeights: [NodeID(2)!]), generation: 2)
        for (index, engine) in farm.engines.enumerated() {
            engine.swap(
                EngineState(
                    generation: 2, node: NodeID(index + 1)!, seed: Self.seed, vip: Self.vip,
                    virtualMAC: farm.vmac, table: table, isARPLeader: index == 1))
        }
        let clock = ContinuousClock()
        let start = clock.now
        while farm.engines.contains(where: { $0.stateGeneration != 2 }) && clock.now - start < .seconds(2) {
            Thread.sleep(forTimeInterval: 0.001)
        }
        #expect(farm.engines.allSatisfy { $0.stateGeneration == 2 })
        try farm.fromClient { sender, client in
            for index in 0..<500 {
                try sender.send(Self.datagram(index, to: farm.vmac, from: client.macValue).1)
            }
        }
        let received = try farm.drain()
        #expect(received[0].isEmpty)
        #expect(received[1].sorted() == (0..<500).map(UInt32.init))
    }
}
