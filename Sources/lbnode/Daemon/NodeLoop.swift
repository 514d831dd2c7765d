import Crypto
import Foundation
import Hashing
import Logging
import RouteSetup
import TapEngine

/// The heartbeat loop of `lbnode run`, on one thread: every turn it gathers what happened (heartbeats, checkers, the
/// data path, requests), steps the `NodeController`, does what the controller decided, and waits for heartbeats
/// until the next one is due.
///
/// Nothing on this thread may wait on something a peer, the network or the machine can hold up: heartbeat sends never
/// block (`HeartbeatSocket`), every receive loop is bounded, log lines go to a writer thread (`LogOutput`), and every
/// look that can take long (the setup with `nft`, neighbours, the VIP's connections, the delivery check's probe
/// frames) runs on a thread of its own (`BackgroundCheck`). The witness's answers are read here, at most 64 a turn:
/// the kernel hands that socket only echo replies from the witness, and a failover decision needs the answer the
/// moment it is made, which a reader of lower priority could miss under the very load that makes peers fall silent.
/// Only re-opening a broken data path (a deleted TAP, a re-created NIC) applies the setup here, at most once a second,
/// while the node serves nothing anyway.
final class NodeLoop {
    let daemon: Daemon
    var config: FarmConfig { daemon.config }
    private var keys: [Data]
    private(set) var controller: NodeController
    private(set) var engineState: EngineState
    private(set) var engine: Engine?
    private let engineConfiguration: EngineConfiguration
    private var monitor: DataPathMonitor
    private var receiveDrops: ReceiveDropCounter
    private let setup: ServerSetup
    let socket: HeartbeatSocket
    private var filter: DatagramFilter
    private(set) var gate: HeartbeatGate
    private(set) var sender: HeartbeatSender
    private let sockets: NodeSockets
    private var pending: [NodeID: Heartbeat] = [:]
    /// Peers whose kernels refused a recent heartbeat of this node since the last step (port unreachable), and when
    /// the latest refused one was sent (ms).
    private var refusedBy: [NodeID: Int] = [:]
    private var lastPing = Int.min / 2
    /// When the controller last had a heartbeat sent: the engine's lease counts from it.
    private var lastBeatInstant: ContinuousClock.Instant?
    private let interfaceMAC: UInt64
    /// The delivery check's probe frames, a round a second on a thread of its own (nil: its socket did not open).
    private var probeRounds: BackgroundCheck<[ProbeFrames.Kind: [UInt16: Int]]>?
    private(set) var deliveryWatch: DeliveryWatch
    let deliveryReason: String?
    private var nextProbeRound = 0
    /// When the probe round last judged began (ms).
    private var judgedProbeRound: Int?
    private(set) var checkers: CheckerRunner
    private var nextRebuild = 0
    /// What keeps the engine from delivering, as found at the start of this turn.
    private var fault: DataPathMonitor.Fault?
    private var lastWrongSourceLog = -60_000
    private var wrongSourcesLogged: UInt64 = 0
    private var duplicatesLogged: [IPAddress: Int] = [:]
    /// The kernel's neighbour entries of the peers' addresses (a peer that never answered ARP shows there).
    let neighbours: BackgroundCheck<[IPPrefix: NeighbourState]>
    /// The VIP's TCP connections in the kernel, looked at once a second while this node drains.
    let vipConnections: BackgroundCheck<Int?>
    private var nextLook = 0
    /// Another host answering for the VIP, looked for every 10 s.
    private(set) var vipWatch: VIPWatch
    private let virtualMAC: UInt64
    private let myAddress: IPAddress
    /// The nice value lbnode was started with (the loop runs 10 lower).
    private let baseNice = SystemCall.threadNice()
    private var realtimeRefusalLogged = false
    /// Whether the loop's thread runs under `SCHED_FIFO` now.
    private var realtime = false
    /// Moves the loop off a CPU that cannot run it (only when it runs real-time).
    private var rescue: WakeupRescue?
    private var rescuesLogged = 0
    private var lastRescueLog = -60_000
    private var floodGuard: HeartbeatFloodGuard
    private let clock = ContinuousClock()
    /// The loop's own work per turn, and this turn's engine swaps so far.
    private(set) var turnCost = LoopTurnCost()
    private var swapTime = Duration.zero
    private var swaps = 0
    private let start = ContinuousClock.now

    /// Starts the engine and the checkers on the setup just applied.
    init(
        daemon: Daemon, keys: [Data], sockets: NodeSockets, setup: ServerSetup, virtualMAC: UInt64,
        interfaceMAC: UInt64,
        deliveryReason: String?
    ) throws {
        self.daemon = daemon
        self.keys = keys
        floodGuard = HeartbeatFloodGuard(now: 0)
        self.sockets = sockets
        self.setup = setup
        self.interfaceMAC = interfaceMAC
        self.deliveryReason = deliveryReason
        let config = daemon.config
        myAddress = config.node.ip
        // Random, not the wall clock: a clock stepped back must not make a restarted node look like a replay.
        let incarnation = UInt64.random(in: 1...UInt64.max)
        controller = try NodeController(
            config: config, virtualMAC: virtualMAC, interfaceMAC: interfaceMAC, incarnation: incarnation, now: 0)
        engineState = controller.initialState()
        var engineConfiguration = EngineConfiguration(
            interface: config.node.interface, interfaceMAC: interfaceMAC, tapName: config.node.tap)
        engineConfiguration.prefilter = config.node.prefilter
        engineConfiguration.kernelDelivery = config.node.kernelDelivery
        engineConfiguration.heartbeatSocket = (config.node.ip, config.farm.heartbeatPort)
        // A connection kept through a handover window must not be forgotten for being idle before the window closes.
        engineConfiguration.flowIdleTimeout = max(
            engineConfiguration.flowIdleTimeout, UInt32(config.farm.handoverSeconds) * 1000)
        let threadsReason: String
        if let threads = config.node.engineThreads {
            engineConfiguration.threads = threads
            threadsReason = "engine_threads: \(threads)"
        } else {
            let automatic = EngineConfiguration.automaticThreads(interface: config.node.interface)
            engineConfiguration.threads = automatic.threads
            threadsReason =
                "engine_threads: auto, \(automatic.receiveQueues) receive queue(s) on \(config.node.interface), "
                + "\(automatic.cpus) CPU(s)"
        }
        self.engineConfiguration = engineConfiguration
        monitor = try DataPathMonitor(
            interface: config.node.interface, tap: config.node.tap, setup: setup,
            intervalMilliseconds: config.farm.heartbeatIntervalMilliseconds)
        receiveDrops = ReceiveDropCounter(
            interface: config.node.interface, intervalMilliseconds: config.farm.heartbeatIntervalMilliseconds)
        engine = try Engine(configuration: engineConfiguration, state: engineState)
        socket = sockets.heartbeat
        filter = sockets.filter
        sender = HeartbeatSender(socket: socket, port: config.farm.heartbeatPort, peers: config.peers)
        gate = HeartbeatGate(
            keys: keys.map { SymmetricKey(data: $0) }, me: config.node.id, peers: sender.addresses,
            restartAfter: controller.failoverMilliseconds, incarnation: incarnation,
            interval: config.farm.heartbeatIntervalMilliseconds)
        deliveryWatch = DeliveryWatch(delivery: config.farm.delivery)
        checkers = CheckerRunner(config: config) { [daemon] in daemon.log($0, $1) }
        let interface = config.node.interface
        neighbours = BackgroundCheck(label: "neighbours") {
            (try? NetlinkSocket()).flatMap { netlink in
                (try? netlink.requireLink(named: interface)).flatMap { try? netlink.neighbours(onLink: $0.index) }
            } ?? [:]
        }
        let vip = config.farm.vipAddress
        vipConnections = BackgroundCheck(label: "vip-connections") { try? TCPConnections.count(localAddress: vip) }
        self.virtualMAC = virtualMAC
        vipWatch = VIPWatch(interface: interface, vip: config.farm.vip, ownMAC: interfaceMAC, now: 0)
        monitor.engineOpened()
        if let prefilter = engine?.prefilterStatus, !prefilter.running {
            log(
                config.node.prefilter ? .warning : .notice,
                "prefilter off (\(prefilter.reason ?? "unknown")): every frame for the VIP enters this node's ring"
                    + (config.node.prefilter ? "; the engine decides them all, at a higher cost in flood delivery" : "")
            )
        }
        if let prefilter = engine?.prefilterStatus {
            if prefilter.kernelDelivery {
                log(
                    .info,
                    "kernel delivery on: the kernel delivers the TCP frames of buckets in steady ownership"
                        + (config.farm.delivery == .relay ? "" : " and decides every UDP frame"))
            } else if config.node.prefilter {
                log(
                    config.node.kernelDelivery ? .warning : .notice,
                    "kernel delivery off (\(prefilter.kernelDeliveryReason ?? prefilter.reason ?? "unknown")): the "
                        + "engine delivers every frame"
                        + (config.node.kernelDelivery ? ", at a cost in throughput and latency" : ""))
            }
        }
        log(.info, "engine: \(engineConfiguration.threads) thread(s) (\(threadsReason))")
        if let fallback = engine?.injectionFallback {
            log(.warning, "io_uring refused (\(fallback)): the engine writes into the TAP one frame at a time")
        }
        if let engine, engine.tapQueues < engineConfiguration.threads {
            log(
                .warning,
                "TAP \(config.node.tap) has a single queue (it was made without multi_queue): the engine's "
                    + "\(engineConfiguration.threads) threads share it; `lbnode teardown` then `lbnode setup` "
                    + "makes it again with a queue per thread")
        }
        if let engine { learnOpenConnections(into: engine) }
        engine?.start()
        probeRounds = openProbeRounds()
        checkers.start()
    }

    private var now: Int { milliseconds(clock.now) }

    private func milliseconds(_ instant: ContinuousClock.Instant) -> Int { (instant - start).wholeMilliseconds }

    private func log(_ level: Logger.Level, _ message: String) { daemon.log(level, message) }

    /// Runs until the node is asked to leave (a signal, the parent gone).
    func run() {
        log(
            .notice,
            "joining: \(config.peers.count) peers, heartbeat every \(config.farm.heartbeatIntervalMilliseconds) ms, "
                + "quorum \(config.effectiveQuorum.rawValue)")
        raiseLoopPriority()
        if realtime {
            rescue = WakeupRescue()
            rescue?.start()
        }
        defer { rescue?.stop() }
        daemon.notifier?.send("READY=1\nSTATUS=node \(config.node.id) of farm \(config.farm.name), joining")
        while true {
            let instant = clock.now
            let onCPU = LoopTurnCost.threadCPUTime()
            let now = milliseconds(instant)
            daemon.notifier?.feedWatchdog(now: now)  // this loop turns at least every heartbeat interval
            let inputs = gather(now: now)
            let stepStart = clock.now
            let actions = controller.step(now: now, inputs)
            let step = clock.now - stepStart
            var leaving = false
            for action in actions {
                leaving = perform(action) || leaving
            }
            maintain(now: now)
            // From this node's last heartbeat, however often the loop turns (it turns at every peer's heartbeat): the
            // peers declare this node dead the failover time after they last heard it, so the engine stops then too,
            // even when only this loop stalled. (A heartbeat is due every interval, whether or not any peer gets it.)
            engine?.renewLease(checkedAt: lastBeatInstant ?? instant, milliseconds: controller.leaseMilliseconds)
            publishStatus(now: now, at: instant)
            noteRescues(now: now)
            noteTurn(startedAt: instant, onCPUBefore: onCPU, step: step)
            if leaving { return }
            receiveHeartbeats()
        }
    }

    /// Tells the peers this node leaves, then stops the engine and the checkers.
    func leave() {
        log(.notice, "leaving: announcing to the peers")
        daemon.notifier?.send("STOPPING=1")
        let farewell = controller.leavingHeartbeat(now: now)
        engine?.swap(controller.initialState())  // serve nothing more, then tell the peers
        for _ in 0..<3 { sender.send(farewell, key: SymmetricKey(data: keys[0]), to: config.peers.map(\.id), at: now) }
        engine?.stop()
        checkers.stop()
    }

    // MARK: - One turn

    /// What the controller needs to know at `now`.
    private func gather(now: Int) -> NodeInputs {
        var inputs = NodeInputs()
        inputs.heartbeats = pending.values.sorted { $0.sender < $1.sender }
        pending.removeAll(keepingCapacity: true)
        inputs.refusedBy = refusedBy
        refusedBy.removeAll()
        inputs.challenges = gate.challenges
        inputs.checkersHealthy = checkers.healthy
        if let witness = sockets.witness {
            inputs.witnessAnsweredAt = witness.answered()
            if now - lastPing >= controller.witnessPingInterval(now: now) {
                witness.ping(now: now)
                lastPing = now
            }
        }
        fault = monitor.fault(now: now, engine: engine)
        // And two signs of a flood, often before it drops anything else: pings to the VIP beyond the kernel's budget,
        // and datagrams the heartbeat socket dropped.
        if var drops = receiveDrops.read(now: now) {
            drops.pings = engine?.prefilterStatus.echoDropped ?? 0
            drops.heartbeatSocket = socket.kernelDrops
            inputs.receiveDrops = drops
        }
        inputs.engineGeneration = engine?.stateGeneration
        inputs.dataPathFault = fault?.reason
        let requests = daemon.requests.take()
        inputs.drainSeconds = requests.drainSeconds
        inputs.undrain = requests.undrain
        inputs.stop = requests.stop
        if requests.reload { inputs.reload = reloadedConfiguration() }
        if let open = vipConnections.latest, let kernel = open.value {
            inputs.openConnections = (reachableConnections(kernel: kernel), open.startedAt)
        }
        inputs.outrankedByDuplicateID = noteDuplicateIDs(now: now)
        noteWrongSources(now: now)
        if let parent = daemon.parent, getppid() != parent {
            log(.notice, "the process that started lbnode (PID \(parent)) ended: leaving")
            inputs.stop = true
        }
        return inputs
    }

    /// Does one action of the controller; whether it is the last (leave).
    private func perform(_ action: NodeAction) -> Bool {
        switch action {
        case .send(let heartbeat, let peers):
            lastBeatInstant = clock.now
            let sentAt = now
            sender.send(heartbeat, key: SymmetricKey(data: keys[0]), to: peers, at: sentAt)
            gate.noteSent(sequence: heartbeat.sequence, at: sentAt)
        case .swap(let state):
            engineState = state
            let began = clock.now
            engine?.swap(state)
            swapTime += clock.now - began
            swaps += 1
        case .announce: engine?.announce()
        case .restartCheckers(let next):
            checkers.stop()
            checkers = CheckerRunner(config: next, previous: checkers) { [daemon] in daemon.log($0, $1) }
            atBasePriority { checkers.start() }
        case .log(let level, let message): log(level, message)
        case .refreshNeighbours: refreshNeighbours()
        case .leave: return true
        }
        return false
    }

    /// The housekeeping of a turn: re-open a broken data path, follow the live peers' incarnations in the kernel
    /// filter, the delivery check's probe frames, and the looks taken on other threads.
    private func maintain(now: Int) {
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
                log(.error, "cannot update the heartbeat filter: \(error)")
            }
        }
        // A round once a second, on a thread of its own: it reads the peers' probe frames that queued meanwhile and
        // sends this node's. What it found is judged at the first turn after it finished.
        if let probeRounds {
            if now >= nextProbeRound {
                nextProbeRound = now + 1000
                probeRounds.start(now: now)
            }
            if let round = probeRounds.latest, round.startedAt != judgedProbeRound {
                judgedProbeRound = round.startedAt
                let live = Set(controller.membership.peers.keys.map(\.rawValue))
                if let change = deliveryWatch.evaluate(now: now, live: live, lastSeen: round.value) {
                    log(deliveryWatch.problem == nil ? .notice : .warning, change)
                }
            }
        }
        if now >= nextLook {
            nextLook = now + 1000
            neighbours.start(now: now)
            if controller.membership.state == .draining { vipConnections.start(now: now) }
        }
        // The farm's MACs are gathered only when a look has finished (every 10 s), not at every turn.
        let lines = vipWatch.step(
            now: now,
            farmMACs: Set(controller.membership.lastKnown.values.map(\.mac)).union([virtualMAC, interfaceMAC]))
        for line in lines {
            log(vipWatch.holders.isEmpty ? .notice : .error, line)
        }
    }

    /// Waits for heartbeats until the next turn is due (a heartbeat to send, a silent peer's deadline), then takes
    /// what queued, in batches, at most 1024 per turn: a flood (spoofing a peer's address, or the kernel filter would
    /// have dropped it) cannot hold this node's own heartbeats back. Of a burst from one sender only the newest
    /// counts: heartbeats that waited in a peer's kernel while its neighbour entry was unresolved arrive together,
    /// stale.
    private func receiveHeartbeats() {
        // Until the millisecond the next turn is due begins (the controller counts whole milliseconds since `start`).
        let due = start + .milliseconds(min(controller.nextTurnDue, now + config.farm.heartbeatIntervalMilliseconds))
        let wait = max(Duration.zero, due - clock.now)
        rescue?.waiting(until: due)
        let ready = socket.wait(timeoutMicroseconds: Int(wait / .microseconds(1)))
        rescue?.woke()
        // Drained after every wait, or poll would keep returning at once for a queued error.
        for refusal in socket.takeRefusals() {
            guard let sentAt = sender.sentAt(quoting: refusal.quoted),
                let peer = sender.addresses.first(where: { $0.value == refusal.peer })?.key
            else { continue }
            refusedBy[peer] = max(refusedBy[peer] ?? sentAt, sentAt)
        }
        guard ready else { return }
        let began = clock.now
        let received = milliseconds(began)
        var count = 0
        for _ in 0..<16 {
            let taken = socket.receiveBatch { datagram in
                if let heartbeat = gate.admit(datagram.bytes, from: datagram.source, now: received) {
                    pending[heartbeat.sender] = heartbeat  // the gate admits in order
                }
            }
            count += taken
            if taken < 64 { break }
        }
        let reading = (clock.now - began) / .microseconds(1)
        if let change = floodGuard.noteReading(microseconds: Int(reading), datagrams: count, now: received) {
            noteFlood(change)
        }
    }

    /// Notes what this turn's own work took, and says when it held the heartbeats back for long.
    private func noteTurn(startedAt instant: ContinuousClock.Instant, onCPUBefore onCPU: Duration, step: Duration) {
        let turn = LoopTurnCost.Turn(
            wall: clock.now - instant, onCPU: LoopTurnCost.threadCPUTime() - onCPU, step: step, swap: swapTime,
            swaps: swaps)
        (swapTime, swaps) = (.zero, 0)
        if let warning = turnCost.note(turn, now: now, failoverMilliseconds: controller.failoverMilliseconds) {
            log(.warning, warning)
        }
    }

    /// Says (every 10 s at most) that the loop was moved off a CPU that could not run it, or once why it cannot be.
    private func noteRescues(now: Int) {
        guard let rescue else { return }
        if let failure = rescue.takeFailure() {
            log(.notice, "the heartbeat loop cannot be moved off a CPU that does not run it: \(failure)")
        }
        let count = rescue.rescues.load(ordering: .relaxed)
        guard count > rescuesLogged, now - lastRescueLog >= 10_000 else { return }
        let times = count - rescuesLogged == 1 ? "once" : "\(count - rescuesLogged) times"
        log(.info, "moved the heartbeat loop off a CPU busy in the kernel \(times) (it would have waited there)")
        rescuesLogged = count
        lastRescueLog = now
    }

    /// Leaves real-time priority while the heartbeat port is flooded, and returns to it after; says so.
    private func noteFlood(_ change: HeartbeatFloodGuard.Change) {
        switch change {
        case .flooded(let rate):
            let rejected = gate.rejected.max { $0.value < $1.value }.map { ", most refused as \($0.key)" } ?? ""
            log(
                .warning,
                "heartbeat port flooded: about \(rate) datagrams/s reach this node\(rejected); reading them takes over "
                    + "a quarter of the heartbeat loop's time, so it "
                    + (realtime ? "leaves real-time priority until a second of calm" : "shares the CPU"))
            if realtime { raiseLoopPriority() }
        case .calm:
            raiseLoopPriority()
            let again = realtime ? ": the heartbeat loop runs real-time again" : ""
            log(.notice, "heartbeat port calm for a second\(again)")
        }
    }

    // MARK: - Decisions the loop still makes

    /// The configuration re-read on SIGHUP (and, when only the key file changed, the new keys taken at once), or nil
    /// when it is refused.
    private func reloadedConfiguration() -> FarmConfig? {
        do {
            var next = try FarmConfig.load(path: daemon.configPath)
            if next.farm.deliverySetting == .auto && config.farm.deliverySetting == .auto {
                next.farm.delivery = config.farm.delivery
            }
            let nextKeys = try next.checkKeyFile(configPath: daemon.configPath).keys
            if nextKeys != keys && next.farm.keyFile == config.farm.keyFile {
                keys = nextKeys
                gate.replaceKeys(keys.map { SymmetricKey(data: $0) })
                log(.notice, "reloaded the key file: \(keys.count) keys accepted, the first signs")
            }
            return next
        } catch {
            log(.warning, "reload refused, keeping the running configuration and keys: \(error)")
            return nil
        }
    }

    /// Logs (every 10 s per address) another node with this node's ID; whether a lower address outranks this one.
    private func noteDuplicateIDs(now: Int) -> Bool {
        let recent = gate.duplicates.filter { now - $0.value <= controller.failoverMilliseconds }
        for (address, _) in recent where now - (duplicatesLogged[address] ?? -60_000) >= 10_000 {
            duplicatesLogged[address] = now
            log(
                .error,
                "node ID \(config.node.id) is also used by \(address): "
                    + (address < myAddress
                        ? "the lower address keeps it, this node fences itself"
                        : "this node (lower address) keeps it"))
        }
        return recent.keys.contains { $0 < myAddress }
    }

    /// Logs (every 10 s) heartbeats that claim a peer's ID from another address.
    private func noteWrongSources(now: Int) {
        let wrongSources = gate.rejected[.wrongSource] ?? 0
        guard let wrong = gate.lastWrongSource, wrongSources > wrongSourcesLogged, now - lastWrongSourceLog >= 10_000
        else { return }
        lastWrongSourceLog = now
        wrongSourcesLogged = wrongSources
        log(.warning, "heartbeats claiming node \(wrong.sender) came from \(wrong.source), not its configured address")
    }

    /// Gives a new engine the VIP's connections the kernel still has: after a restart (its peers kept them for it while
    /// it was stopped) or a re-opened data path, this node serves them again once it owns their buckets.
    private func learnOpenConnections(into engine: Engine) {
        let vip = config.farm.vipAddress
        do {
            let open = try TCPConnections.list(localAddress: vip)
            guard !open.isEmpty else { return }
            let learnt = engine.learn(open)
            log(
                .notice,
                "took \(learnt) of \(open.count) open connections of the VIP from the kernel: this node serves them again"
            )
        } catch {
            log(
                .warning,
                "cannot read the VIP's open connections (\(error)): those left from before are not served again")
        }
    }

    /// Re-applies the setup and re-opens the engine on the devices as they are now (a re-created interface or TAP):
    /// at most once a second, logged when it fails.
    private func rebuildDataPath(because reason: String) {
        engine?.stop()
        engine = nil
        monitor.engineClosed()
        do {
            let plan = try setup.applySetup(stateDirectory: daemon.stateDirectory)
            let rebuilt = try Engine(configuration: engineConfiguration, state: engineState)
            learnOpenConnections(into: rebuilt)
            atBasePriority { rebuilt.start() }
            engine = rebuilt
            monitor.engineOpened()
            probeRounds = openProbeRounds()  // the interface may be a new one
            deliveryWatch.restart()
            log(.notice, "data path re-opened (\(reason)): \(plan.steps.count) setup steps applied")
        } catch {
            log(.warning, "data path cannot be re-opened yet (\(reason)): \(error); retrying every second")
        }
    }

    /// Forgets the interface's unresolved neighbour entries, on a thread of its own (a netlink dump).
    private func refreshNeighbours() {
        let interface = config.node.interface
        DispatchQueue.global(qos: .userInitiated).async { [daemon] in
            do {
                let netlink = try NetlinkSocket()
                let removed = try netlink.removeUnresolvedNeighbours(
                    onLink: try netlink.requireLink(named: interface).index)
                if removed > 0 {
                    daemon.log(.info, "back on the network: \(removed) unresolved neighbours asked again")
                }
            } catch {
                daemon.log(.warning, "cannot refresh the neighbours of \(interface): \(error)")
            }
        }
    }

    /// The probe frames of the delivery check (`DeliveryWatch`), a round each time a look starts: what arrived since
    /// the last one (at most `ProbeFrames.framesPerCall`: a flood of their EtherType costs this loop nothing), then
    /// this node's round sent. Nil, logged, if the packet socket cannot be opened.
    private func openProbeRounds() -> BackgroundCheck<[ProbeFrames.Kind: [UInt16: Int]]>? {
        let frames: ProbeFrames
        do {
            frames = try ProbeFrames(
                interface: config.node.interface, ownMAC: interfaceMAC, farm: config.farm.name,
                me: config.node.id.rawValue, peers: Set(config.peers.map(\.id.rawValue)))
        } catch {
            log(.warning, "delivery check off: cannot open its packet socket: \(error)")
            return nil
        }
        let start = start
        return BackgroundCheck(label: "probe-frames") {
            frames.receive(now: (ContinuousClock.now - start).wholeMilliseconds)
            frames.sendRound()
            return frames.lastSeen
        }
    }

    // MARK: - Priorities

    /// Runs the loop's thread under `SCHED_FIFO` (`realtimePriority`), or where that is refused at a nice value 10
    /// below the process's: it works a few microseconds per heartbeat, but on a busy machine (in flood mode every
    /// engine reads every client frame; a flood's softirqs) each wake-up waited behind the rest, and failover
    /// detection cannot lose those milliseconds. The threads it starts do not inherit the class (an earlier try with
    /// SCHED_RR starved the engine, docs/benchmarks.md), and a flood that keeps it reading sends it back to the normal
    /// policy until the flood ends (`HeartbeatFloodGuard`).
    private func raiseLoopPriority() {
        realtime = false
        if floodGuard.flooded {
            try? SystemCall.setThreadNormalPolicy()
        } else {
            do {
                try SystemCall.setThreadRealtime(priority: Self.realtimePriority)
                realtime = true
                return
            } catch {
                if !realtimeRefusalLogged {
                    log(.notice, "the heartbeat loop runs at a raised nice value instead of real-time: \(error)")
                    realtimeRefusalLogged = true
                }
            }
        }
        do {
            try SystemCall.setThreadNice(max(-20, baseNice - 10))
        } catch {
            log(.warning, "the heartbeat loop keeps its priority: \(error)")
        }
    }

    /// The heartbeat loop's `SCHED_FIFO` priority: above every normal thread and the kernel's softirq threads (a flood
    /// that fills the CPUs with receive work must not hold heartbeats back), low among real-time ones. It sleeps
    /// between heartbeats; the kernel keeps 5 % of each second for the normal policy whatever it does.
    static let realtimePriority: Int32 = 10

    /// Runs `body` (which starts threads: an engine, checkers) with the loop thread at the process's own priority,
    /// which the new threads inherit.
    private func atBasePriority<T>(_ body: () throws -> T) rethrows -> T {
        try? SystemCall.setThreadNice(baseNice)
        defer { raiseLoopPriority() }
        return try body()
    }
}
