import Crypto
import Foundation
import Hashing
import RouteSetup
import Synchronization
import TapEngine

/// `lbnode run`: prepares the server, starts the engine, and keeps the farm's view by heartbeats, swapping a new
/// engine state in on every view change.
///
/// One thread runs the loop: every interval it sends a heartbeat to each peer, then reads heartbeats until the next
/// one is due, feeds them to the membership, and acts on what changed. Signals only set a flag that the loop reads.
final class Daemon {
    let config: FarmConfig
    let stateDirectory: String
    let teardownOnExit: Bool
    /// How long the moved buckets of a planned change keep their handover marks.
    let handoverMilliseconds = 30_000
    private let stopRequested = Mutex(false)
    private var signalSources: [DispatchSourceSignal] = []
    private let clock = ContinuousClock()
    private let start = ContinuousClock.now

    init(config: FarmConfig, stateDirectory: String, teardownOnExit: Bool) {
        self.config = config
        self.stateDirectory = stateDirectory
        self.teardownOnExit = teardownOnExit
    }

    /// Milliseconds since the daemon started (monotonic).
    private var now: Int {
        let elapsed = (clock.now - start).components
        return Int(elapsed.seconds) * 1000 + Int(elapsed.attoseconds / 1_000_000_000_000_000)
    }

    func log(_ message: String) {
        let line = "lbnode[\(config.farm.name)/\(config.node.id)] \(Date().formatted(.iso8601)) \(message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func run() throws {
        let key = SymmetricKey(data: FileManager.default.contents(atPath: config.farm.keyFile) ?? Data())
        let virtualMAC = FarmIdentity.virtualMAC(farm: config.farm.name, vip: config.farm.vip)
        let setup = ServerSetup(
            interface: config.node.interface, vip: config.farm.vip, tapName: config.node.tap,
            virtualMAC: virtualMAC)
        let plan = try setup.applySetup(stateDirectory: stateDirectory)
        log(plan.isEmpty ? "setup: \(config.node.tap) is ready" : "setup: \(plan.steps.count) steps applied")
        let interfaceMAC =
            try NetlinkSocket().requireLink(named: config.node.interface).mac.map { macValue($0.bytes) }
            ?? 0
        var states = try EngineStateBuilder(config: config, virtualMAC: macValue(virtualMAC.bytes))
        let engine = try Engine(
            configuration: EngineConfiguration(
                interface: config.node.interface, interfaceMAC: interfaceMAC,
                tapName: config.node.tap),
            state: states.state(for: .empty, alive: [], macs: [:], handover: false))
        engine.start()
        defer { engine.stop() }
        let socket = try DatagramSocket(
            bindTo: IPAddress(bytes: config.node.address.bytes)!,
            port: config.farm.heartbeatPort)
        installSignalHandlers()

        var membership = Membership(
            me: config.node.id, weight: config.node.weight,
            intervalMilliseconds: config.farm.heartbeatIntervalMilliseconds, deadAfter: config.farm.deadAfter,
            seed: FarmSeed(farmName: config.farm.name), now: now)
        var gate = HeartbeatGate(key: key, peers: Set(config.peers.map(\.id)))
        var beat = Heartbeat(
            sender: config.node.id, state: .joining, healthy: true, weight: config.node.weight,
            incarnation: UInt64(Date().timeIntervalSince1970 * 1_000_000), sequence: 0, viewDigest: 0,
            mac: interfaceMAC)
        var nextBeat = now
        var handoverUntil: Int?
        log("joining: \(config.peers.count) peers, heartbeat every \(config.farm.heartbeatIntervalMilliseconds) ms")

        func send(_ state: MemberState) {
            beat.state = state
            beat.healthy = membership.healthy
            beat.sequence += 1
            beat.viewDigest = membership.view.digest(seed: membership.seed)
            let bytes = beat.encoded(key: key)
            for peer in config.peers {
                try? socket.send(bytes, to: IPAddress(bytes: peer.address.bytes)!, port: config.farm.heartbeatPort)
            }
        }

        func macs() -> [UInt16: UInt64] {
            Dictionary(uniqueKeysWithValues: membership.peers.map { ($0.key.rawValue, $0.value.mac) })
                .merging([config.node.id.rawValue: interfaceMAC]) { $1 }
        }

        func apply(_ events: [MembershipEvent], handover: Bool = true) {
            var viewChanged = false
            for event in events {
                log(event.description)
                if case .viewChanged = event { viewChanged = true }
            }
            guard viewChanged else { return }
            let started = clock.now
            let alive = Set(membership.peers.keys).union([config.node.id])
            engine.swap(states.state(for: membership.view, alive: alive, macs: macs(), handover: handover))
            // The leader announces on every change of view: another node may have claimed the role (and, directed,
            // the switch port of the virtual MAC) for a moment while the views disagreed.
            let isLeader = membership.leader == config.node.id
            if isLeader { engine.announce() }
            handoverUntil = handover ? now + handoverMilliseconds : nil
            log(
                "engine state \(states.generation): \(states.table.shares[config.node.id] ?? 0) of "
                    + "\(states.table.count) buckets here\(isLeader ? ", ARP leader" : "")"
                    + "\(isLeader && config.farm.delivery == .directed ? " and director" : ""), built in "
                    + "\((clock.now - started).formatted(.units(allowed: [.milliseconds], fractionalPart: .show(length: 2))))"
            )
        }

        while !stopRequested.withLock({ $0 }) {
            if now >= nextBeat {
                if membership.mayActivate(now: now) { apply(membership.setLocal(state: .active)) }
                send(membership.state)
                nextBeat += config.farm.heartbeatIntervalMilliseconds
                if nextBeat < now { nextBeat = now + config.farm.heartbeatIntervalMilliseconds }
            }
            // Wait for heartbeats until the next one is due, then take all that queued meanwhile, and only then
            // look for silent peers: a stall of this loop must not make live peers look dead.
            var timeout = Int32(max(0, min(nextBeat - now, config.farm.heartbeatIntervalMilliseconds)))
            while let bytes = try? socket.receive(timeoutMilliseconds: timeout) {
                if let heartbeat = gate.admit(bytes) { apply(membership.receive(heartbeat, now: now)) }
                timeout = 0
            }
            apply(membership.tick(now: now))
            if let until = handoverUntil, now >= until {
                handoverUntil = nil
                engine.swap(states.state(for: membership.view, alive: [], macs: macs(), handover: false))
                log("handover window over: engine state \(states.generation)")
            }
        }

        log("leaving: announcing to the peers")
        for _ in 0..<3 { send(.left) }
        engine.stop()
        if teardownOnExit {
            let (teardown, _) = try setup.applyTeardown(stateDirectory: stateDirectory)
            log("teardown: \(teardown.steps.count) steps")
        }
        log("stopped")
    }

    private func installSignalHandlers() {
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in stopRequested.withLock { $0 = true } }
            source.resume()
            signalSources.append(source)
        }
    }
}
