import Crypto
import Foundation
import Hashing
import Logging
import RouteSetup
import Synchronization
import TapEngine

/// `lbnode run`: prepares the server, starts the engine, and keeps the farm's view by heartbeats, swapping a new
/// engine state in on every view change.
///
/// One thread runs the loop: every interval it sends a heartbeat to each peer, then reads heartbeats until the next
/// one is due, feeds them to the membership, and acts on what changed. Signals and the control socket's thread only
/// touch the mutexes (`stopRequested`, `drainRequested`, `status`): that is why the class may be shared.
final class Daemon: @unchecked Sendable {
    let config: FarmConfig
    let configPath: String
    let stateDirectory: String
    let teardownOnExit: Bool
    /// How long the moved buckets of a planned change keep their handover marks.
    let handoverMilliseconds = 30_000
    private let stopRequested = Mutex(false)
    private let reloadRequested = Mutex(false)
    /// Seconds of drain asked for over the control socket (nil = none asked).
    private let drainRequested = Mutex<Int?>(nil)
    private let status = Mutex<NodeStatus?>(nil)
    private var signalSources: [DispatchSourceSignal] = []
    private let clock = ContinuousClock()
    private let start = ContinuousClock.now

    /// With `--exit-with-parent`: the parent's PID; the node leaves when it is no longer the parent (it ended).
    let parent: pid_t?

    init(config: FarmConfig, configPath: String, stateDirectory: String, teardownOnExit: Bool, parent: pid_t? = nil) {
        self.config = config
        self.parent = parent
        self.configPath = configPath
        logger = Logger(label: "lbnode[\(config.farm.name)/\(config.node.id)]")
        self.stateDirectory = stateDirectory
        self.teardownOnExit = teardownOnExit
    }

    /// Milliseconds since the daemon started (monotonic).
    private var now: Int {
        let elapsed = (clock.now - start).components
        return Int(elapsed.seconds) * 1000 + Int(elapsed.attoseconds / 1_000_000_000_000_000)
    }

    /// swift-log, to standard error (one line per event, with a timestamp and the node).
    private let logger: Logger

    func log(_ message: String) {
        logger.info("\(message)")
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
            state: states.state(for: .empty, alive: [], leader: nil, macs: [:], handover: false))
        engine.start()
        defer { engine.stop() }
        let socket = try DatagramSocket(
            bindTo: IPAddress(bytes: config.node.address.bytes)!,
            port: config.farm.heartbeatPort)
        installSignalHandlers()
        let control = try ControlServer(path: config.controlSocket) { [self] command in
            answer(command)
        }
        defer { withExtendedLifetime(control) {} }
        let metrics = try MetricsServer(address: config.metricsAddress) { [self] in status.withLock { $0 } }
        defer { withExtendedLifetime(metrics) {} }
        var checkers = CheckerRunner(config: config) { [self] in log($0) }
        checkers.start()
        defer { checkers.stop() }

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
        var drainUntil: Int?
        var lastChange: String?
        var lastFailover: String?
        log("joining: \(config.peers.count) peers, heartbeat every \(config.farm.heartbeatIntervalMilliseconds) ms")

        func send(_ state: MemberState) {
            beat.state = state
            beat.healthy = membership.healthy
            beat.weight = membership.weight
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

        /// The engine state for the current view; `handover`: keep and add the marks of planned moves.
        func nextState(handover: Bool) -> EngineState {
            states.state(
                for: membership.view, alive: Set(membership.peers.keys).union([config.node.id]),
                leader: membership.leader, macs: macs(), handover: handover)
        }

        func apply(_ events: [MembershipEvent], handover: Bool = true) {
            var viewChanged = false
            for event in events {
                log(event.description)
                switch event {
                case .viewChanged: viewChanged = true
                case .peerDied: lastFailover = "\(Date().formatted(.iso8601)) \(event)"
                default: break
                }
                lastChange = "\(Date().formatted(.iso8601)) \(event)"
            }
            guard viewChanged else { return }
            let started = clock.now
            engine.swap(nextState(handover: handover))
            // The leader announces on every change of view: another node may have claimed the role (and, directed,
            // the switch port of the virtual MAC) for a moment while the views disagreed; its engine re-announces
            // every 200 ms anyway.
            let isLeader = membership.leader == config.node.id
            if isLeader { engine.announce() }
            handoverUntil = handover ? now + handoverMilliseconds : nil
            log(
                "engine state \(states.generation): \(states.shares[config.node.id] ?? 0) of "
                    + "\(states.table.count) buckets here\(isLeader ? ", ARP leader" : "")"
                    + "\(isLeader && config.farm.delivery == .directed ? " and director" : ""), built in "
                    + "\((clock.now - started).formatted(.units(allowed: [.milliseconds], fractionalPart: .show(length: 2))))"
            )
        }

        /// Sends the heartbeat when it is due. Called again after every heartbeat taken in: a burst of view changes
        /// (each builds a table) must not hold our own heartbeats back, or the peers would think this node dead.
        func beatIfDue() {
            guard now >= nextBeat else { return }
            send(membership.state)
            nextBeat += config.farm.heartbeatIntervalMilliseconds
            if nextBeat < now { nextBeat = now + config.farm.heartbeatIntervalMilliseconds }
        }

        while !stopRequested.withLock({ $0 }) {
            if now >= nextBeat && membership.mayActivate(now: now) { apply(membership.setLocal(state: .active)) }
            beatIfDue()
            // Wait for heartbeats until the next one is due, then take all that queued meanwhile, and only then
            // look for silent peers: a stall of this loop must not make live peers look dead. Of a burst from one
            // sender only the newest counts: heartbeats a peer sent while its neighbour entry for us was unresolved
            // (its cable was cut) wait in its kernel and arrive together, stale, when the cable is back; applied
            // one by one they would take it in, out and in again.
            var timeout = Int32(max(0, min(nextBeat - now, config.farm.heartbeatIntervalMilliseconds)))
            var newest: [NodeID: Heartbeat] = [:]
            while let bytes = try? socket.receive(timeoutMilliseconds: timeout) {
                if let heartbeat = gate.admit(bytes) { newest[heartbeat.sender] = heartbeat }  // the gate admits in order
                timeout = 0
            }
            for heartbeat in newest.values.sorted(by: { $0.sender < $1.sender }) {
                apply(membership.receive(heartbeat, now: now))
                beatIfDue()
            }
            apply(membership.tick(now: now))
            if reloadRequested.withLock({ value in
                defer { value = false }; return value
            }) {
                do {
                    let next = try FarmConfig.load(path: configPath)
                    if let refused = Self.fixedChanges(from: config, to: next) {
                        log("reload refused: \(refused) cannot change while running; restart lbnode for that")
                    } else {
                        states.replaceRules(next.rules)
                        checkers.stop()
                        checkers = CheckerRunner(config: next) { [self] in log($0) }
                        checkers.start()
                        log(
                            "reloaded: weight \(next.node.weight), \(next.rules.count) rules, "
                                + "\(next.checkers.count) checkers")
                        let events = membership.setLocal(weight: next.node.weight)
                        if events.isEmpty {  // same view: the rules still need a new state
                            engine.swap(nextState(handover: handoverUntil != nil))
                        }
                        apply(events)
                    }
                } catch {
                    log("reload refused: \(error)")
                }
            }
            if checkers.healthy != membership.healthy {
                apply(membership.setLocal(healthy: checkers.healthy))
            }
            if let seconds = drainRequested.withLock({ value in
                defer { value = nil }; return value
            }) {
                log("draining for up to \(seconds) s: new connections go to the others, established ones stay")
                apply(membership.setLocal(state: .draining))
                drainUntil = now + seconds * 1000
            }
            if let parent, getppid() != parent {
                log("the process that started lbnode (PID \(parent)) ended: leaving")
                stopRequested.withLock { $0 = true }
            }
            if let until = drainUntil, now >= until {
                log("drain time is over")
                stopRequested.withLock { $0 = true }
            }
            if let until = handoverUntil, now >= until {
                handoverUntil = nil
                engine.swap(nextState(handover: false))
                log("handover window over: engine state \(states.generation)")
            }
            publishStatus(
                membership, states: states, engine: engine, gate: gate, lastChange: lastChange,
                lastFailover: lastFailover)
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

    /// Refreshes the snapshot that `lbnode status` reads.
    private func publishStatus(
        _ membership: Membership, states: EngineStateBuilder, engine: Engine, gate: HeartbeatGate,
        lastChange: String?, lastFailover: String?
    ) {
        let shares = states.shares
        var members = membership.peers.map { id, peer in
            NodeStatus.Member(
                id: id.rawValue, state: peer.state.description, healthy: peer.healthy,
                weight: peer.weight, buckets: shares[id] ?? 0, inView: membership.view.ids.contains(id))
        }
        members.append(
            NodeStatus.Member(
                id: config.node.id.rawValue, state: membership.state.description,
                healthy: membership.healthy, weight: membership.weight, buckets: shares[config.node.id] ?? 0,
                inView: membership.view.ids.contains(config.node.id)))
        let counters = engine.counters
        var engineFigures: [String: UInt64] = [
            "received": counters.received, "delivered": counters.delivered, "forwarded": counters.forwarded,
            "answered": counters.answered, "transmitted": counters.transmitted, "batches": counters.batches,
            "ring_drops": counters.ringDrops,
        ]
        for reason in DropReason.allCases where counters.dropped(reason) > 0 {
            engineFigures["dropped_\(reason)"] = counters.dropped(reason)
        }
        let snapshot = NodeStatus(
            farm: config.farm.name, node: config.node.id.rawValue, state: membership.state.description,
            leader: membership.leader?.rawValue, delivery: config.farm.delivery.rawValue, agreed: membership.agreed,
            generation: states.generation, members: members.sorted { $0.id < $1.id }, flows: engine.flowCount,
            engine: engineFigures,
            offloads: Dictionary(uniqueKeysWithValues: OffloadKind.allCases.map { ("\($0)", counters.received($0)) }),
            heartbeatsRejected: Dictionary(uniqueKeysWithValues: gate.rejected.map { ($0.key.rawValue, $0.value) }),
            lastChange: lastChange, lastFailover: lastFailover)
        status.withLock { $0 = snapshot }
    }

    /// Answers one control command: `status`, or `drain <seconds>`.
    private func answer(_ command: String) -> Data {
        let words = command.split(separator: " ")
        switch words.first {
        case "status":
            let snapshot = status.withLock { $0 }
            return (try? JSONEncoder().encode(snapshot)) ?? Data("{}".utf8)
        case "drain":
            let seconds = words.count > 1 ? Int(words[1]) ?? 60 : 60
            drainRequested.withLock { $0 = seconds }
            return Data("{\"draining\": \(seconds)}".utf8)
        default:
            return Data("{\"error\": \"unknown command '\(command)'\"}".utf8)
        }
    }

    private func installSignalHandlers() {
        for signalNumber in [SIGTERM, SIGINT, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                if signalNumber == SIGHUP {
                    reloadRequested.withLock { $0 = true }
                } else {
                    stopRequested.withLock { $0 = true }
                }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    /// The first key that differs between two configurations and cannot change while running (everything but the
    /// weight, the rules and the checkers), or `nil`.
    static func fixedChanges(from old: FarmConfig, to new: FarmConfig) -> String? {
        if old.farm != new.farm { return "the farm section" }
        var oldNode = old.node
        oldNode.weight = new.node.weight
        if oldNode != new.node { return "node (other than weight)" }
        if old.peers != new.peers { return "peers" }
        if old.controlSocket != new.controlSocket { return "control_socket" }
        if old.metricsAddress != new.metricsAddress { return "metrics_address" }
        return nil
    }
}
