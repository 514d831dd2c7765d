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
    /// As loaded; with `delivery: auto`, the mode the probe picked replaces the provisional one before anything runs.
    private(set) var config: FarmConfig
    let configPath: String
    let stateDirectory: String
    let teardownOnExit: Bool
    private let stopRequested = Mutex(false)
    private let reloadRequested = Mutex(false)
    /// Seconds of drain asked for over the control socket (nil = none asked).
    private let drainRequested = Mutex<Int?>(nil)
    private let status = Mutex<NodeStatus?>(nil)
    /// The nice value lbnode was started with (the heartbeat loop runs 10 lower).
    private let baseNice = SystemCall.threadNice()
    /// Why this delivery mode (`delivery: auto`), for the status.
    private var deliveryReason: String?
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
    private var now: Int { milliseconds(clock.now) }

    private func milliseconds(_ instant: ContinuousClock.Instant) -> Int { (instant - start).wholeMilliseconds }

    /// swift-log, to standard error (one line per event, with a timestamp and the node).
    private let logger: Logger

    func log(_ message: String) {
        logger.info("\(message)")
    }

    func run() throws {
        installSignalHandlers()  // before setup: a TERM or HUP during it must not kill the process half-way
        var keys = try config.checkKeyFile(configPath: configPath).keys
        if config.farm.deliveryIsAuto {
            log("delivery auto: probing the network with the peers that run")
            let auto = AutoDelivery(
                config: config, keys: keys, stateDirectory: stateDirectory, log: { [self] in log($0) },
                stopRequested: { [self] in stopRequested.withLock { $0 } })
            guard let decision = try auto.decide() else {
                log("stopped before the delivery mode was found: nothing was set up")
                return
            }
            config.farm.delivery = decision.delivery
            deliveryReason = decision.reason
            log("delivery auto: \(decision.delivery) (\(decision.reason))")
        }
        let virtualMAC = FarmIdentity.virtualMAC(farm: config.farm.name, vip: config.farm.vip)
        let interfaceAddress = try NetlinkSocket().requireLink(named: config.node.interface).mac
        let interfaceMAC = interfaceAddress.map { macValue($0.bytes) } ?? 0
        let relay = config.farm.delivery == .relay
        let setup = ServerSetup(
            interface: config.node.interface, vip: config.farm.vip, tapName: config.node.tap,
            virtualMAC: relay ? interfaceAddress ?? virtualMAC : virtualMAC, relay: relay)
        let plan = try setup.applySetup(stateDirectory: stateDirectory)
        log(plan.isEmpty ? "setup: \(config.node.tap) is ready" : "setup: \(plan.steps.count) steps applied")
        // Random, not the wall clock: a clock stepped back must not make a restarted node look like a replay.
        var controller = try NodeController(
            config: config, virtualMAC: macValue(virtualMAC.bytes), interfaceMAC: interfaceMAC,
            incarnation: UInt64.random(in: 1...UInt64.max), now: now)
        var engineState = controller.initialState()
        let engineConfiguration = EngineConfiguration(
            interface: config.node.interface, interfaceMAC: interfaceMAC, tapName: config.node.tap)
        var monitor = DataPathMonitor(interface: config.node.interface, tap: config.node.tap, setup: setup)
        var engine: Engine? = try Engine(configuration: engineConfiguration, state: engineState)
        monitor.engineOpened()
        engine?.start()
        defer { engine?.stop() }
        let myAddress = IPAddress(bytes: config.node.address.bytes)!
        let peerAddresses = Dictionary(
            uniqueKeysWithValues: config.peers.map { ($0.id, IPAddress(bytes: $0.address.bytes)!) })
        var filter = DatagramFilter(
            payloadSize: Heartbeat.size, magic: Heartbeat.magicWord, sources: Array(peerAddresses.values),
            pinnedOffset: Heartbeat.incarnationOffset)
        let socket = try HeartbeatSocket(bindTo: myAddress, port: config.farm.heartbeatPort, filter: filter)
        let control = try ControlServer(path: config.controlSocket, group: config.controlGroup?.id) {
            [self] command, peer in
            answer(command, from: peer)
        }
        defer { withExtendedLifetime(control) {} }
        let metrics = try MetricsServer(address: config.metricsAddress) { [self] in status.withLock { $0 } }
        defer { withExtendedLifetime(metrics) {} }
        let witness = try config.farm.witness.map { address throws(SystemCallError) in
            try WitnessPinger(target: address)
        }
        var lastPing = Int.min / 2
        var probeFrames = openProbeFrames(interfaceMAC: interfaceMAC)
        var deliveryWatch = DeliveryWatch(delivery: config.farm.delivery)
        var nextProbeRound = 0
        var checkers = CheckerRunner(config: config) { [self] in log($0) }
        checkers.start()
        defer { checkers.stop() }

        var gate = HeartbeatGate(
            keys: keys.map { SymmetricKey(data: $0) }, me: config.node.id, peers: peerAddresses,
            restartAfter: controller.failoverMilliseconds)
        var pending: [NodeID: Heartbeat] = [:]
        var nextRebuild = 0
        var lastWrongSourceLog = -60_000
        var wrongSourcesLogged: UInt64 = 0
        var duplicatesLogged: [IPAddress: Int] = [:]
        log(
            "joining: \(config.peers.count) peers, heartbeat every \(config.farm.heartbeatIntervalMilliseconds) ms, "
                + "quorum \(config.effectiveQuorum.rawValue)")

        func sendToPeers(_ heartbeat: Heartbeat) {
            let bytes = heartbeat.encoded(key: SymmetricKey(data: keys[0]))
            for address in peerAddresses.values {
                try? socket.send(bytes, to: address, port: config.farm.heartbeatPort)
            }
        }

        /// Re-applies the setup and re-opens the engine on the devices as they are now (a re-created interface or
        /// TAP): at most once a second, logged when it fails.
        func rebuildDataPath(because reason: String) {
            engine?.stop()
            engine = nil
            monitor.engineClosed()
            do {
                let plan = try setup.applySetup(stateDirectory: stateDirectory)
                let rebuilt = try Engine(configuration: engineConfiguration, state: engineState)
                atBasePriority { rebuilt.start() }
                engine = rebuilt
                monitor.engineOpened()
                probeFrames = openProbeFrames(interfaceMAC: interfaceMAC)  // the interface may be a new one
                deliveryWatch.restart()
                log("data path re-opened (\(reason)): \(plan.steps.count) setup steps applied")
            } catch {
                log("data path cannot be re-opened yet (\(reason)): \(error); retrying every second")
            }
        }

        raiseLoopPriority()
        var leaving = false
        while !leaving {
            let instant = clock.now
            let now = milliseconds(instant)
            var inputs = NodeInputs()
            inputs.heartbeats = pending.values.sorted { $0.sender < $1.sender }
            pending.removeAll(keepingCapacity: true)
            inputs.checkersHealthy = checkers.healthy
            if let witness {
                inputs.witnessAnsweredAt = witness.answered()
                if now - lastPing >= controller.witnessPingInterval(now: now) {
                    witness.ping(now: now)
                    lastPing = now
                }
            }
            let fault = monitor.fault(now: now, engine: engine)
            inputs.dataPathFault = fault?.reason
            inputs.drainSeconds = drainRequested.withLock { value in
                defer { value = nil }
                return value
            }
            if reloadRequested.withLock({ value in
                defer { value = false }
                return value
            }) {
                do {
                    var next = try FarmConfig.load(path: configPath)
                    if next.farm.deliveryIsAuto && config.farm.deliveryIsAuto {
                        next.farm.delivery = config.farm.delivery
                    }
                    let nextKeys = try next.checkKeyFile(configPath: configPath).keys
                    if nextKeys != keys && NodeController.fixedChanges(from: config, to: next) == nil {
                        keys = nextKeys
                        gate.replaceKeys(keys.map { SymmetricKey(data: $0) })
                        log("reloaded the key file: \(keys.count) keys accepted, the first signs")
                    }
                    inputs.reload = next
                } catch {
                    log("reload refused, keeping the running configuration and keys: \(error)")
                }
            }
            let recentDuplicates = gate.duplicates.filter { now - $0.value <= controller.failoverMilliseconds }
            for (address, _) in recentDuplicates where now - (duplicatesLogged[address] ?? -60_000) >= 10_000 {
                duplicatesLogged[address] = now
                log(
                    "node ID \(config.node.id) is also used by \(address): "
                        + (address < myAddress
                            ? "the lower address keeps it, this node fences itself"
                            : "this node (lower address) keeps it"))
            }
            inputs.outrankedByDuplicateID = recentDuplicates.keys.contains { $0 < myAddress }
            let wrongSources = gate.rejected[.wrongSource] ?? 0
            if let wrong = gate.lastWrongSource, wrongSources > wrongSourcesLogged, now - lastWrongSourceLog >= 10_000 {
                lastWrongSourceLog = now
                wrongSourcesLogged = wrongSources
                log("heartbeats claiming node \(wrong.sender) came from \(wrong.source), not its configured address")
            }
            inputs.stop = stopRequested.withLock { $0 }
            if let parent, getppid() != parent {
                log("the process that started lbnode (PID \(parent)) ended: leaving")
                inputs.stop = true
            }

            for action in controller.step(now: now, inputs) {
                switch action {
                case .send(let heartbeat): sendToPeers(heartbeat)
                case .swap(let state):
                    engineState = state
                    engine?.swap(state)
                case .announce: engine?.announce()
                case .restartCheckers(let next):
                    checkers.stop()
                    checkers = CheckerRunner(config: next, previous: checkers) { [self] in log($0) }
                    atBasePriority { checkers.start() }
                case .log(let message): log(message)
                case .leave: leaving = true
                }
            }
            if let fault, fault.rebuild, now >= nextRebuild {
                nextRebuild = now + 1000
                rebuildDataPath(because: fault.reason)
            }
            // The kernel filter follows the live peers' incarnations (they change only when a peer restarts).
            let pins = gate.liveIncarnations(now: now)
            if pins != filter.pinned {
                filter = filter.pinning(pins)
                do {
                    try socket.attach(filter)
                } catch {
                    log("cannot update the heartbeat filter: \(error)")
                }
            }
            // Once a second: the peers' probe frames queue meanwhile (a few per peer), so the loop pays one look.
            if let probeFrames, now >= nextProbeRound {
                nextProbeRound = now + 1000
                probeFrames.receive(now: now)
                probeFrames.sendRound()
                let live = Set(controller.membership.peers.keys.map(\.rawValue))
                if let change = deliveryWatch.evaluate(now: now, live: live, lastSeen: probeFrames.lastSeen) {
                    log(change)
                }
            }
            // From the time of the check above: a stall after it still runs the lease out.
            engine?.renewLease(checkedAt: instant, milliseconds: controller.failoverMilliseconds)
            publishStatus(controller, engine: engine, gate: gate, socket: socket, watch: deliveryWatch, now: now)
            guard !leaving else { break }

            // Wait for heartbeats until the next one is due, then take what queued, in batches, at most 1024 per
            // step: a flood (spoofing a peer's address, or the kernel filter would have dropped it) cannot hold this
            // node's own heartbeats back. Of a burst from one sender only the newest counts: heartbeats that waited
            // in a peer's kernel while its neighbour entry was unresolved arrive together, stale.
            let wait = Int32(max(0, min(controller.nextBeatDue - self.now, config.farm.heartbeatIntervalMilliseconds)))
            if socket.wait(timeoutMilliseconds: wait) {
                let received = self.now
                for _ in 0..<16 {
                    let taken = socket.receiveBatch { datagram in
                        if let heartbeat = gate.admit(datagram.bytes, from: datagram.source, now: received) {
                            pending[heartbeat.sender] = heartbeat  // the gate admits in order
                        }
                    }
                    if taken < 64 { break }
                }
            }
        }

        log("leaving: announcing to the peers")
        let farewell = controller.leavingHeartbeat()
        engine?.swap(controller.initialState())  // serve nothing more, then tell the peers
        for _ in 0..<3 { sendToPeers(farewell) }
        engine?.stop()
        if teardownOnExit {
            let (teardown, _) = try setup.applyTeardown(stateDirectory: stateDirectory)
            log("teardown: \(teardown.steps.count) steps")
        }
        log("stopped")
    }

    /// Gives the heartbeat loop's thread a nice value 10 below the process's: it works a few microseconds per heartbeat,
    /// but on a busy machine (in flood mode every engine reads every client frame) each wake-up waited behind the data
    /// path, and failover detection cannot lose those milliseconds. A weight, not a real-time class: a loop busy on a
    /// flood cannot starve the engine (SCHED_RR did; docs/benchmarks.md).
    private func raiseLoopPriority() {
        do {
            try SystemCall.setThreadNice(max(-20, baseNice - 10))
        } catch {
            log("the heartbeat loop keeps its priority: \(error)")
        }
    }

    /// Runs `body` (which starts threads: an engine, checkers) with the loop thread at the process's own priority,
    /// which the new threads inherit.
    private func atBasePriority<T>(_ body: () throws -> T) rethrows -> T {
        try? SystemCall.setThreadNice(baseNice)
        defer { raiseLoopPriority() }
        return try body()
    }

    /// The probe frames of the delivery check (`DeliveryWatch`); nil, logged, if the packet socket cannot be opened.
    private func openProbeFrames(interfaceMAC: UInt64) -> ProbeFrames? {
        do {
            return try ProbeFrames(
                interface: config.node.interface, ownMAC: interfaceMAC, farm: config.farm.name,
                me: config.node.id.rawValue, peers: Set(config.peers.map(\.id.rawValue)))
        } catch {
            log("delivery check off: cannot open its packet socket: \(error)")
            return nil
        }
    }

    /// Refreshes the snapshot that `lbnode status` reads.
    private func publishStatus(
        _ controller: NodeController, engine: Engine?, gate: HeartbeatGate, socket: HeartbeatSocket,
        watch: DeliveryWatch, now: Int
    ) {
        let membership = controller.membership
        let states = controller.states
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
        let counters = engine?.counters ?? EngineCounters()
        var engineFigures: [String: UInt64] = [
            "received": counters.received, "delivered": counters.delivered, "forwarded": counters.forwarded,
            "answered": counters.answered, "transmitted": counters.transmitted, "batches": counters.batches,
            "ring_drops": counters.ringDrops,
        ]
        for reason in DropReason.allCases where counters.dropped(reason) > 0 {
            engineFigures["dropped_\(reason)"] = counters.dropped(reason)
        }
        /// An event at `at` (ms) in wall-clock time, for people reading the status.
        func stamped(_ event: (at: Int, event: String)?) -> String? {
            event.map { "\(Date().addingTimeInterval(Double($0.at - now) / 1000).formatted(.iso8601)) \($0.event)" }
        }
        var snapshot = NodeStatus(
            farm: config.farm.name, node: config.node.id.rawValue, state: membership.state.description,
            leader: membership.leader?.rawValue, delivery: config.farm.delivery.rawValue, agreed: membership.agreed,
            generation: states.generation, members: members.sorted { $0.id < $1.id }, flows: engine?.flowCount ?? 0,
            engine: engineFigures,
            offloads: Dictionary(uniqueKeysWithValues: OffloadKind.allCases.map { ("\($0)", counters.received($0)) }),
            heartbeatsRejected: Dictionary(uniqueKeysWithValues: gate.rejected.map { ($0.key.rawValue, $0.value) }),
            lastChange: stamped(controller.lastChange), lastFailover: stamped(controller.lastFailover))
        snapshot.heartbeatsDroppedByKernel = socket.kernelDrops
        snapshot.fenced = membership.fence?.description
        snapshot.liveNodes = membership.liveVotes
        snapshot.expectedNodes = membership.expectedVotes
        snapshot.quorum = membership.hasQuorum
        snapshot.witness = config.farm.witness?.description
        snapshot.witnessReachable = membership.witnessAnsweredAt.map {
            now - $0 <= Membership.witnessTimeoutMilliseconds
        }
        snapshot.dataPathFault = controller.dataPathFault
        snapshot.leaderConflicts = controller.leaderConflicts
        snapshot.deliveryAuto = config.farm.deliveryIsAuto
        snapshot.deliveryReason = deliveryReason
        snapshot.deliveryProblem = watch.problem
        snapshot.deliveryCheaper = watch.cheaper?.rawValue
        snapshot.deliveryDisagreements = controller.deliveryDisagreements.sorted { $0.key < $1.key }
            .map { "node \($0.key): \($0.value)" }
        snapshot.duplicateIDs = gate.duplicates.keys.map(\.description).sorted()
        let flowCounters = engine?.flowCounters ?? FlowTableCounters()
        snapshot.flowsAdmitted = flowCounters.confirmed
        snapshot.flowsEvicted = flowCounters.evicted
        status.withLock { $0 = snapshot }
    }

    /// The longest drain the control socket accepts (a day), as `lbnode drain --timeout` does.
    static let maxDrainSeconds = 86_400

    /// Answers one control command: `status` (anyone who may connect), or `drain <seconds>` (root, or a member of
    /// `control_group`).
    private func answer(_ command: String, from peer: StreamServer.Peer) -> Data {
        struct Reply: Encodable {
            var draining: Int?
            var error: String?
        }
        func reply(_ value: Reply) -> Data { (try? JSONEncoder().encode(value)) ?? Data("{}".utf8) }
        let words = command.split(separator: " ")
        switch words.first {
        case "status":
            let snapshot = status.withLock { $0 }
            return (try? JSONEncoder().encode(snapshot)) ?? Data("{}".utf8)
        case "drain":
            guard peer.uid == 0 || config.controlGroup.map({ peer.belongs(toGroup: $0.id) }) == true else {
                let group = config.controlGroup.map { " or a member of group \($0.name)" } ?? ""
                return reply(
                    Reply(
                        error: "drain needs root\(group) (the control socket's peer is uid "
                            + "\(peer.uid.map(String.init) ?? "unknown"))"))
            }
            let text = words.count > 1 ? String(words[1]) : "60"
            guard words.count <= 2, let seconds = Int(text), (0...Self.maxDrainSeconds).contains(seconds) else {
                return reply(Reply(error: "drain takes a number of seconds from 0 to \(Self.maxDrainSeconds)"))
            }
            drainRequested.withLock { $0 = seconds }
            return reply(Reply(draining: seconds))
        default:
            return reply(Reply(error: "unknown command '\(command.prefix(64))': status or drain SECONDS"))
        }
    }

    private func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)  // a client gone mid-answer is an error to handle, not a reason to die
        signal(SIGCHLD, SIG_DFL)  // an inherited SIG_IGN would make checkers' waitpid fail
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
}
