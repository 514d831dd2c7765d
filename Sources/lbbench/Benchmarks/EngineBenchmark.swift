import Foundation
import Hashing
import RouteSetup
import Synchronization
import TapEngine
import Testbed

/// `lbbench engine`: one client, a switch, two servers with a UDP sink each; a generator (`sendmmsg` on AF_PACKET)
/// sends 64-byte UDP frames from many client addresses and ports to the VIP's MAC. Three paths on fresh testbeds in
/// one run: the baseline (nothing accepts the frames: the generator's and the switch's cost), vipfarm's engine, and
/// the in-kernel alternative (nftables `jhash ip saddr mod 2` in a netdev ingress chain, the CLUSTERIP successor).
struct EngineBenchmark {
    enum Path: String, CaseIterable, Codable {
        case baseline
        /// As lbnode runs by default: the kernel's classifier decides every UDP frame (docs/engine.md, "Kernel
        /// delivery"), and the engine only what it cannot decide.
        case kernelDelivery = "kernel delivery"
        /// The engine's own path: the bucket prefilter, the TPACKET_V2 ring read directly, TAP writes batched through
        /// io_uring.
        case engine = "engine ring+io_uring"
        /// The same without the prefilter: every engine's ring takes every frame.
        case enginePrefilterOff = "engine, prefilter off"
        case engineRingWrite = "engine ring+write"
        case nftables

        var engineInjection: EngineConfiguration.Injection? {
            switch self {
            case .kernelDelivery, .engine, .enginePrefilterOff: .ioUring
            case .engineRingWrite: .write
            case .baseline, .nftables: nil
            }
        }
    }

    var seconds: Double
    /// Offered frames per second for the equal-load trial (0 = as fast as the generator goes).
    var rates: [Int]
    var flows: Int
    /// Engine threads per server: the engine paths and the drain run once per count.
    var threadCounts = [1]
    /// Servers sharing the VIP.
    var servers = 2
    /// Frame size on the wire, with the 4-byte FCS (64 to 1518).
    var frameBytes = 64
    var progress: (String) -> Void = { _ in }

    static let vip = IPAddress("198.18.0.100")!
    static let vipPrefix = IPPrefix("198.18.0.100")!
    static let port: UInt16 = 9000
    static let heartbeatPort: UInt16 = 7946
    /// Drains per thread count; the report gives their median.
    static let drains = 3
    static let seed = FarmSeed(farmName: "lbbench")
    static let virtualMAC = HardwareAddress(bytes: [0x02, 0x42] + vipPrefix.bytes.suffix(4))!
    /// `virtualMAC` as the engine takes it.
    static let virtualMACValue = macValue(virtualMAC.bytes)

    func run() throws -> EngineReport {
        var trials: [EngineReport.Trial] = []
        for rate in rates {
            for path in Path.allCases {
                // One write per frame is measured with one thread only: it is the reference for io_uring.
                let counts = path.engineInjection == nil ? [1] : path == .engineRingWrite ? [1] : threadCounts
                for threads in counts {
                    progress(
                        "\(path.rawValue)\(path.engineInjection == nil ? "" : ", \(threads) thread(s)") at "
                            + "\(rate == 0 ? "full speed" : "\(rate) pps") for \(seconds) s")
                    trials.append(try trial(path, rate: rate, threads: threads))
                }
            }
        }
        var drains: [EngineReport.Drain] = []
        for threads in threadCounts {
            // A drain lasts a tenth of a second or so, at the machine's mercy: the median of a few.
            var runs: [EngineReport.Drain] = []
            for run in 1...Self.drains {
                progress(
                    "drain \(run)/\(Self.drains), \(threads) thread(s): filling a stopped engine's rings for "
                        + "\(seconds) s, then timing how fast they empty")
                runs.append(try drain(threads: threads))
            }
            var median = runs.sorted { $0.inspectedPerSecond < $1.inspectedPerSecond }[runs.count / 2]
            median.runs = runs.map(\.inspectedPerSecond)
            drains.append(median)
        }
        return EngineReport(seconds: seconds, flows: flows, trials: trials, drains: drains)
    }

    /// The engine's ceiling with `threads` threads: the rings are filled while the engine is stopped, then the
    /// engine empties them as fast as it can (half the frames are its own and go into the TAP; no socket listens, so
    /// the kernel drops them after IP, as in the research's "no listener" ceiling).
    func drain(threads: Int) throws -> EngineReport.Drain {
        let testbed = try VirtualNetwork(.init(servers: 1, clients: 1))
        defer { testbed.down() }
        let stateDirectory = NSTemporaryDirectory() + "lbbench-drain-\(testbed.id)"
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        let server = testbed.servers[0]
        let table = try TableBuilder(seed: Self.seed).build(
            MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!]), generation: 1)
        let made: Result<Engine, Error> = try server.namespace.run { () throws(NetlinkError) in
            Result {
                try ServerSetup(interface: "eth0", vip: Self.vipPrefix, virtualMAC: Self.virtualMAC)
                    .applySetup(stateDirectory: stateDirectory)
                var configuration = EngineConfiguration(
                    interface: "eth0", interfaceMAC: server.macValue,
                    tapName: "lb0")
                configuration.ringBytes = 256 << 20
                configuration.threads = threads
                // Every frame in the ring, the engine's and the other node's: the ceiling of inspecting them.
                configuration.prefilter = false
                configuration.kernelDelivery = false
                let state = EngineState(
                    generation: 1, node: NodeID(1)!, seed: Self.seed, vip: Self.vip,
                    virtualMAC: Self.virtualMACValue, table: table)
                return try Engine(configuration: configuration, state: state)
            }
        }
        let engine = try made.get()
        defer { engine.stop() }
        let blasterResult: Result<FrameBlaster, Error> = try testbed.clients[0].namespace.run {
            () throws(NetlinkError) in
            Result {
                try FrameBlaster(
                    interface: "eth0", frames: clientFrames(clientMAC: testbed.clients[0].macValue))
            }
        }
        let sent = try blasterResult.get().run(seconds: seconds, rate: 0)
        let clock = ContinuousClock()
        let start = clock.now
        engine.start()
        var last = (received: UInt64(0), at: start)
        // Counters are published per batch, and a batch can be a large part of the ring: wait for the first, then
        // until nothing new arrives for 100 ms.
        while clock.now - last.at < .milliseconds(100) || (last.received == 0 && clock.now - start < .seconds(10)) {
            Thread.sleep(forTimeInterval: 0.002)
            let received = engine.counters.received
            if received != last.received { last = (received, clock.now) }
        }
        let counters = engine.counters
        let seconds = (last.at - start).inSeconds
        return EngineReport.Drain(
            threads: threads, sent: sent, inspected: counters.received, injected: counters.delivered,
            ringDrops: counters.ringDrops, seconds: seconds,
            perThread: engine.threadStatus.map(\.counters.received), wrongThread: counters.wrongThread)
    }

    /// Client frames: UDP, `frameBytes` on the wire (with the FCS), from `flows` addresses in 198.18.128.0/17 and ports.
    func clientFrames(clientMAC: UInt64) -> [[UInt8]] {
        (0..<flows).map { index in
            PacketBuilder.udp(
                destinationMAC: Self.virtualMACValue, sourceMAC: clientMAC,
                source: IPAddress(ipv4: 0xC612_8000 + UInt32(index % 32768)), destination: Self.vip,
                sourcePort: UInt16(10000 + (index * 7919) % 50000), destinationPort: Self.port,
                payload: Array(repeating: 0, count: frameBytes - 46))
        }
    }

    func trial(_ path: Path, rate: Int, threads: Int = 1) throws -> EngineReport.Trial {
        let testbed = try VirtualNetwork(.init(servers: servers, clients: 1))
        defer { testbed.down() }
        progress("testbed \(testbed.id) is up")
        let stateDirectory = NSTemporaryDirectory() + "lbbench-engine-\(testbed.id)"
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        var engines: [Engine] = []
        defer { for engine in engines { engine.stop() } }
        var sinks: [DatagramSocket] = []
        // lbnode's heartbeat sockets: the classifier acts only while one is bound (docs/engine.md, "When lbnode
        // dies"), and looks it up at every frame it decides.
        var heartbeatSockets: [DatagramSocket] = []
        defer { withExtendedLifetime(heartbeatSockets) {} }
        let table = try TableBuilder(seed: Self.seed).build(
            MembershipView(equalWeights: (1...servers).map { NodeID($0)! }), generation: 1)
        for (index, server) in testbed.servers.enumerated() {
            let made: Result<(Engine?, DatagramSocket?, DatagramSocket?), Error> = try server.namespace.run {
                () throws(NetlinkError) in
                Result {
                    switch path {
                    case .baseline:
                        return (nil, nil, nil)
                    case .kernelDelivery, .engine, .enginePrefilterOff, .engineRingWrite:
                        try ServerSetup(interface: "eth0", vip: Self.vipPrefix, virtualMAC: Self.virtualMAC)
                            .applySetup(stateDirectory: stateDirectory + "/\(index)")
                        let state = EngineState(
                            generation: 1, node: NodeID(index + 1)!, seed: Self.seed, vip: Self.vip,
                            virtualMAC: Self.virtualMACValue, table: table, isARPLeader: index == 0)
                        var configuration = EngineConfiguration(
                            interface: "eth0",
                            interfaceMAC: server.macValue, tapName: "lb0")
                        configuration.injection = path.engineInjection!
                        configuration.prefilter = path != .enginePrefilterOff
                        configuration.kernelDelivery = path == .kernelDelivery
                        configuration.threads = threads
                        var heartbeat: DatagramSocket?
                        if path == .kernelDelivery {
                            heartbeat = try DatagramSocket(bindTo: server.ip, port: Self.heartbeatPort)
                            configuration.heartbeatSocket = (server.ip, Self.heartbeatPort)
                        }
                        return (try Engine(configuration: configuration, state: state), try Self.sink(), heartbeat)
                    case .nftables:
                        let socket = try NetlinkSocket()
                        try socket.addAddress(Self.vipPrefix, toLink: try socket.requireLink(named: "eth0").index)
                        try NFTables.apply(Self.nftRuleset(keep: index, of: servers))
                        return (nil, try Self.sink(), nil)
                    }
                }
            }
            let (engine, sink, heartbeat) = try made.get()
            if let engine { engines.append(engine) }
            if let sink { sinks.append(sink) }
            if let heartbeat { heartbeatSockets.append(heartbeat) }
        }
        for engine in engines { engine.start() }

        let blasterResult: Result<FrameBlaster, Error> = try testbed.clients[0].namespace.run {
            () throws(NetlinkError) in
            Result {
                try FrameBlaster(
                    interface: "eth0", frames: clientFrames(clientMAC: testbed.clients[0].macValue))
            }
        }
        let blaster = try blasterResult.get()
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000) + 200)
        let counts = Mutex([Int](repeating: 0, count: sinks.count))
        let group = DispatchGroup()
        for (index, sink) in sinks.enumerated() {
            let box = UncheckedBox(sink)
            DispatchQueue.global().async(group: group) {
                let received = box.value.count(untilQuietAfter: deadline, quietMilliseconds: 300)
                counts.withLock { $0[index] = received }
            }
        }
        let before = CPUSample.now()
        let start = ContinuousClock.now
        let sent = blaster.run(seconds: seconds, rate: rate)
        let elapsed = ContinuousClock.now - start
        let after = CPUSample.now()
        group.wait()
        let perServer = counts.withLock { $0 }
        let engineCounters = engines.map(\.counters)
        let duration = elapsed.inSeconds
        return EngineReport.Trial(
            path: path, threads: path.engineInjection == nil ? nil : threads, offeredRate: rate, sent: sent,
            seconds: duration,
            deliveredPerServer: perServer,
            cpuBusySeconds: CPUSample.busySeconds(from: before, to: after),
            engineReceived: engineCounters.map(\.received),
            prefilterDropped: engines.map(\.prefilterStatus.dropped),
            engineAccepted: engineCounters.map(\.delivered),
            kernelDelivered: engines.map(\.prefilterStatus.deliveredInKernel),
            kernelDropped: engines.map(\.prefilterStatus.droppedInKernel),
            engineRingDrops: engineCounters.map(\.ringDrops),
            threadReceived: engines.map { $0.threadStatus.map(\.counters.received) },
            wrongThread: engineCounters.map(\.wrongThread),
            engineDrops: engineCounters.map { counters in
                Dictionary(
                    uniqueKeysWithValues: DropReason.allCases.compactMap { reason in
                        counters.dropped(reason) > 0 ? (reason.description, counters.dropped(reason)) : nil
                    })
            })
    }

    static func sink() throws -> DatagramSocket {
        try DatagramSocket(bindTo: vip, port: port, receiveBufferBytes: 32 << 20)
    }

    /// Server `keep` (0-based) accepts the frames whose `jhash ip saddr mod servers` is `keep`: each frame for the
    /// cluster MAC is marked as for this host (`pkttype set host`) and dropped unless it is this server's share.
    static func nftRuleset(keep: Int, of servers: Int = 2) -> String {
        let mac = HardwareAddress(bytes: virtualMAC.bytes)!.description
        let verdicts = (0..<servers).map { "\($0) : \($0 == keep ? "accept" : "drop")" }.joined(separator: ", ")
        return """
            table netdev lbbench {
                chain ingress {
                    type filter hook ingress device "eth0" priority 0; policy accept;
                    ether daddr \(mac) meta pkttype set host jhash ip saddr mod \(servers) seed 0xdeadbeef vmap { \(verdicts) }
                }
            }
            """
    }
}
