import Hashing
import Logging
import TapEngine

/// What the I/O loop gathered for one step of the node's control logic.
struct NodeInputs {
    /// Authentic, fresh heartbeats taken in since the last step: the newest per sender, in sender order.
    var heartbeats: [Heartbeat] = []
    /// Every checker passes (and the link is up).
    var checkersHealthy = true
    /// Why the engine cannot deliver (TAP gone, interface re-created, engine stuck, ...), or nil.
    var dataPathFault: String? = nil
    /// Seconds of drain asked for over the control socket.
    var drainSeconds: Int? = nil
    /// `lbnode undrain`: a draining or drained node takes buckets again.
    var undrain = false
    /// The connections this node still serves (the kernel's TCP connections of the VIP, and the engine's flow table),
    /// counted by a check that started at `since` (ms); nil when no count is known.
    var openConnections: (count: Int, since: Int)? = nil
    /// A configuration re-read on SIGHUP (already validated on its own).
    var reload: FarmConfig? = nil
    /// When the latest ping the witness answered was sent (ms; nil: none answered since the last step).
    var witnessAnsweredAt: Int? = nil
    /// An authentic heartbeat with this node's own ID came from a lower address (which keeps the ID).
    var outrankedByDuplicateID = false
    /// The node is asked to leave (a signal, the parent gone).
    var stop = false
    /// The generation of the state every engine thread runs (`Engine.stateGeneration`); nil: no engine to wait for.
    var engineGeneration: UInt64? = nil
    /// Peers whose kernels answered one of this node's last heartbeats with port unreachable (their lbnode is gone),
    /// and when that heartbeat was sent (ms).
    var refusedBy: [NodeID: Int] = [:]
    /// How many received frames this host has dropped; nil when not read this step.
    var receiveDrops: ReceiveDrops? = nil
    /// Authentic heartbeats the gate has not taken in, waiting for this node's challenge (`HeartbeatGate.challenges`):
    /// this node's heartbeats echo them, so their senders can answer.
    var challenges: [NodeID: HeartbeatGate.Challenge] = [:]
}

/// What the I/O loop must do after a step, in order.
enum NodeAction {
    /// Send this heartbeat to these peers (`HeartbeatPacing`: an away peer gets one a second).
    case send(Heartbeat, to: [NodeID])
    /// Give the engine this state.
    case swap(EngineState)
    /// Send a gratuitous ARP (this node took the leader's role).
    case announce
    /// Restart the checkers with this configuration (a reload).
    case restartCheckers(FarmConfig)
    /// Forget the interface's neighbour entries that are being resolved or failed: the node is back on the network
    /// (its link, or its peers), and addresses it tried to reach while cut off would wait up to a second for their
    /// next ARP probe (clients' replies, heartbeats).
    case refreshNeighbours
    case log(Logger.Level, String)
    /// Leave: send `.left` and stop.
    case leave
}

/// The node's control logic, without any I/O: membership, engine states, the handover window, drains, reloads and
/// fencing, stepped by the I/O loop (`Daemon`) with the time and what it gathered. Tests drive it with a manual clock.
struct NodeController {
    private(set) var config: FarmConfig
    private(set) var membership: Membership
    private(set) var states: EngineStateBuilder
    let interfaceMAC: UInt64
    /// How long the moved buckets of a planned change keep their handover marks (`farm.handover_seconds`).
    var handoverMilliseconds: Int { config.farm.handoverSeconds * 1000 }
    private var beat: Heartbeat
    private var nextBeat: Int
    /// When the last heartbeat was sent (ms).
    private var lastBeat = Int.min / 2
    private var challenges: [NodeID: HeartbeatGate.Challenge] = [:]
    private var lastStep: Int?
    /// The start of receive loss was logged, its end not yet.
    private var lossLogged = false
    /// A lengthening under lateness was logged, the return to the farm's deadline not yet.
    private var lateLogged = false
    private var lastDrops = ReceiveDrops()
    /// When the handover window closes (ms), while one is open.
    private(set) var handoverUntil: Int?
    /// When the drain began and when it gives up waiting for the connections to end.
    private var drainStartedAt: Int?
    private var drainUntil: Int?
    private var pacing = HeartbeatPacing()
    /// The longest a bucket taken from a live node waits for the peers' agreement.
    static let holdLimitMilliseconds = 3000
    /// Until when the buckets this node takes from live nodes are held (not served) waiting for the peers' agreement.
    /// The views of the states handed to the engine that it may not run yet, by generation, oldest first; and the
    /// digest of the newest view it runs (nil: no engine to ask).
    private var swappedViews: [(generation: UInt64, digest: UInt64)] = []
    private var runningDigest: UInt64?
    private var holdUntil: Int?
    /// When the hold began: only heartbeats taken in later can lift it.
    private var holdSince = 0
    /// The leader the engine's state was built for, and whether it was built fenced.
    private var builtLeader: NodeID?
    private var builtFenced = false
    private(set) var dataPathFault: String?
    /// The last event, and the last death of a peer: when (ms) and what.
    private(set) var lastChange: (at: Int, event: String)?
    private(set) var lastFailover: (at: Int, event: String)?
    /// Times another node claimed the leader's role while this node's view gave it to this node.
    private(set) var leaderConflicts: UInt64 = 0
    private var inConflict = false
    /// Live peers whose heartbeats name another delivery mode than this node's (the farm's nodes must agree).
    private(set) var deliveryDisagreements: [NodeID: Delivery] = [:]

    init(
        config: FarmConfig, virtualMAC: UInt64, interfaceMAC: UInt64, incarnation: UInt64, now: Int
    ) throws {
        self.config = config
        self.interfaceMAC = interfaceMAC
        states = try EngineStateBuilder(config: config, virtualMAC: virtualMAC)
        membership = Membership(
            me: config.node.id, incarnation: incarnation, weight: config.node.weight,
            intervalMilliseconds: config.farm.heartbeatIntervalMilliseconds, deadAfter: config.farm.deadAfter,
            seed: FarmSeed(farmName: config.farm.name), now: now, peers: Set(config.peers.map(\.id)),
            quorum: config.effectiveQuorum, witness: config.farm.witness != nil)
        beat = Heartbeat(
            sender: config.node.id, state: .joining, healthy: true, weight: config.node.weight,
            incarnation: incarnation, sequence: 0, viewDigest: 0, mac: interfaceMAC, delivery: config.farm.delivery)
        nextBeat = now
    }

    /// The state the engine starts with: nothing owned.
    mutating func initialState() -> EngineState {
        let state = states.state(for: .empty, alive: [], leader: nil, macs: [:], handover: false)
        swappedViews = [(state.generation, membership.view.digest(seed: membership.seed))]
        return state
    }

    /// Hands the engine `state`, and notes the view it was built for.
    private mutating func swap(_ state: EngineState, into actions: inout [NodeAction]) {
        actions.append(.swap(state))
        swappedViews.append((state.generation, membership.view.digest(seed: membership.seed)))
    }

    /// The view that heartbeats report: the newest one whose state every engine thread runs. A peer that takes a
    /// bucket from this node waits until it reports the new view (release before acquire), so this node must not
    /// report it while a thread still serves the bucket. Without an engine to ask, the view as built.
    private mutating func noteRunning(_ generation: UInt64?) {
        guard let generation else {
            swappedViews.removeAll()
            runningDigest = nil
            return
        }
        while swappedViews.count > 1 && swappedViews[1].generation <= generation { swappedViews.removeFirst() }
        if let oldest = swappedViews.first, oldest.generation <= generation { runningDigest = oldest.digest }
    }

    /// Milliseconds of silence after which a peer is dead (and after which this node, stalled, fences itself).
    var failoverMilliseconds: Int { membership.deadline }

    /// How long the engine may serve after this node's last heartbeat (`Engine.renewLease`): until the first live
    /// peer may declare this node dead (`Membership.leaseMilliseconds`).
    var leaseMilliseconds: Int { membership.leaseMilliseconds }

    /// One step at `now` (monotonic ms).
    mutating func step(now: Int, _ inputs: NodeInputs) -> [NodeAction] {
        var actions: [NodeAction] = []
        noteRunning(inputs.engineGeneration)
        // A stall longer than the deadline its last heartbeat announced (the process stopped, the VM frozen): the
        // peers have taken this node's buckets, so it serves nothing until it has heard the current view. Under receive
        // loss that is the long deadline: the peers wait it out, and a shorter stall must not fence for nothing.
        if let last = lastStep, now - last > max(failoverMilliseconds, Int(beat.deadlineMilliseconds)) {
            actions.append(.log(.warning, "this node was stalled for \(now - last) ms"))
            apply(membership.fence(.stalled, now: now), now: now, into: &actions)
        }
        lastStep = now
        challenges = inputs.challenges
        // What this node knows of itself first, so that the heartbeat of this step already says it.
        if inputs.outrankedByDuplicateID {
            apply(membership.fence(.duplicateID, now: now), now: now, into: &actions)
        }
        if let reload = inputs.reload { self.reload(reload, now: now, into: &actions) }
        if inputs.dataPathFault != dataPathFault {
            actions.append(
                inputs.dataPathFault.map { .log(.warning, "data path down: \($0)") }
                    ?? .log(.notice, "data path can deliver again"))
            if inputs.dataPathFault == nil { backOnTheNetwork(now: now, into: &actions) }
            dataPathFault = inputs.dataPathFault
        }
        if let answered = inputs.witnessAnsweredAt { membership.witnessAnswered(at: answered) }
        if let drops = inputs.receiveDrops { noteReceiveDrops(drops, now: now, into: &actions) }
        let healthy = inputs.checkersHealthy && dataPathFault == nil
        if healthy != membership.healthy { apply(membership.setLocal(healthy: healthy), now: now, into: &actions) }
        if let seconds = inputs.drainSeconds { drain(seconds: seconds, now: now, into: &actions) }
        if inputs.undrain { undrain(now: now, into: &actions) }
        if now >= nextBeat && membership.mayActivate(now: now) {
            apply(membership.setLocal(state: .active), now: now, into: &actions)
        }
        beatIfDue(now: now, into: &actions)
        for heartbeat in inputs.heartbeats {
            noteDelivery(of: heartbeat, into: &actions)
            apply(membership.receive(heartbeat, now: now), now: now, into: &actions)
            beatIfDue(now: now, into: &actions)
        }
        noteLateness(now: now, into: &actions)
        for (peer, sentAt) in inputs.refusedBy.sorted(by: { $0.key < $1.key }) {
            apply(membership.refused(by: peer, heartbeatSentAt: sentAt, now: now), now: now, into: &actions)
        }
        apply(membership.tick(now: now), now: now, into: &actions)
        apply(
            membership.liftFence(now: now, stillFenced: inputs.outrankedByDuplicateID), now: now, into: &actions)
        if let until = holdUntil, membership.peersAgree(since: holdSince) || now >= until {
            holdUntil = nil
            swap(nextState(handover: handoverUntil != nil), into: &actions)
            actions.append(
                now >= until
                    ? .log(
                        .warning,
                        "took the buckets held for the peers' agreement after \(now - holdSince) ms without it")
                    : .log(.info, "took the held buckets: every peer agrees (after \(now - holdSince) ms)"))
        }
        if let until = handoverUntil, now >= until {
            if someoneDraining {
                // A drain keeps the window open: the draining node serves its connections, the others take only new
                // ones, until it is drained.
                handoverUntil = now + handoverMilliseconds
            } else {
                handoverUntil = nil
                swap(nextState(handover: false), into: &actions)
                actions.append(.log(.info, "handover window over: table \(states.generation) without handover marks"))
            }
        }
        noteLeaderConflict(into: &actions)
        deliveryDisagreements = deliveryDisagreements.filter { membership.peers[$0.key] != nil }
        finishDrainIfDone(now: now, open: inputs.openConnections, into: &actions)
        if inputs.stop { actions.append(.leave) }
        beatIfDue(now: now, into: &actions)
        return actions
    }

    /// Whether this node or a live peer is draining, or a peer stopped and is expected back: the handover marks
    /// stay while either serves (or will serve again) its connections.
    private var someoneDraining: Bool {
        membership.state == .draining
            || membership.peers.values.contains { $0.state == .draining || $0.state == .stopped }
    }

    /// Starts a drain (or, draining, sets a new timeout): the node leaves the view, its buckets go to the others,
    /// which take only new connections in them, and it keeps serving its established ones.
    private mutating func drain(seconds: Int, now: Int, into actions: inout [NodeAction]) {
        guard membership.state != .drained else {
            actions.append(.log(.notice, "drain asked for, but this node is drained already"))
            return
        }
        drainUntil = now + seconds * 1000
        if membership.state == .draining {
            actions.append(.log(.notice, "draining: at most \(seconds) s from now"))
            return
        }
        drainStartedAt = now
        actions.append(
            .log(
                .notice,
                "draining for up to \(seconds) s: new connections go to the others, established ones stay; drained "
                    + "as soon as none is left"))
        apply(membership.setLocal(state: .draining), now: now, into: &actions)
    }

    /// Ends the drain once no connection is left (counted by a check that started after the peers saw the drain:
    /// none can have come in after it), or when its time is over; the node then serves nothing and stays drained.
    private mutating func finishDrainIfDone(
        now: Int, open: (count: Int, since: Int)?, into actions: inout [NodeAction]
    ) {
        guard membership.state == .draining, let started = drainStartedAt, let until = drainUntil else { return }
        let seconds = (now - started) / 1000
        if let open, open.count == 0, open.since >= started + failoverMilliseconds {
            actions.append(.log(.notice, "drained: no connection left after \(seconds) s; serving nothing"))
        } else if now >= until {
            let left = open.map { "\($0.count) connections still open are cut" } ?? "connections may still be open"
            actions.append(.log(.warning, "drain time is over after \(seconds) s: \(left); serving nothing"))
        } else {
            return
        }
        drainStartedAt = nil
        drainUntil = nil
        apply(membership.setLocal(state: .drained), now: now, into: &actions)
        swap(nextState(handover: false), into: &actions)
        actions.append(.log(.notice, "drained: `lbnode undrain` takes this node back, stopping lbnode takes it out"))
    }

    /// Takes a draining or drained node back: it joins again (active after the deadline) and takes its buckets back
    /// as in a join, new connections first.
    private mutating func undrain(now: Int, into actions: inout [NodeAction]) {
        guard membership.state == .draining || membership.state == .drained else {
            actions.append(.log(.notice, "undrain asked for, but this node is \(membership.state)"))
            return
        }
        drainStartedAt = nil
        drainUntil = nil
        actions.append(.log(.notice, "undrained: joining again"))
        apply(membership.rejoin(now: now), now: now, into: &actions)
    }

    /// A growing count of dropped received frames: a flood may be dropping heartbeats with the rest, so this node
    /// gives silent peers the long deadline (`DeadlineTolerance`) and says so; logged as the loss starts and once it has
    /// ended.
    private mutating func noteReceiveDrops(_ drops: ReceiveDrops, now: Int, into actions: inout [NodeAction]) {
        let wasUnderLoss = membership.tolerance.underLoss(now: now)
        defer { lastDrops = drops }
        if membership.noteReceiveDrops(drops.total, now: now), !wasUnderLoss {
            actions.append(
                .log(
                    .warning,
                    "this host drops received frames (\(drops.grown(since: lastDrops).joined(separator: ", "))): peers "
                        + "now get \(membership.tolerance.longMilliseconds) ms of silence before they are declared "
                        + "dead (their heartbeats may be lost too), and are told"))
            lossLogged = true
        } else if lossLogged, !membership.tolerance.underLoss(now: now) {
            lossLogged = false
            actions.append(backToTheFarmsDeadline(after: "no received frame dropped"))
        }
    }

    /// The notice that a longer deadline has ended: `calm` for the tolerance's memory, back to the farm's.
    private func backToTheFarmsDeadline(after calm: String) -> NodeAction {
        .log(
            .notice,
            "\(calm) for \(DeadlineTolerance.memoryMilliseconds / 1000) s: back to the \(membership.deadline)-ms deadline"
        )
    }

    /// Once no peer has been heard late for the tolerance's memory, the deadline is the farm's again: said once
    /// (each lengthening is logged as its `MembershipEvent.heardLate`).
    private mutating func noteLateness(now: Int, into actions: inout [NodeAction]) {
        guard lateLogged, !membership.tolerance.late(now: now) else { return }
        lateLogged = false
        actions.append(backToTheFarmsDeadline(after: "no peer heard late"))
    }

    /// The heartbeat that says this node leaves (sent three times by the I/O loop).
    /// The last word of a node that stops: `stopped` (its peers keep its connections for it while it restarts), or
    /// `left` when it is drained and has none.
    mutating func leavingHeartbeat(now: Int) -> Heartbeat {
        nextHeartbeat(state: membership.state == .drained ? .left : .stopped, now: now)
    }

    private mutating func nextHeartbeat(state: MemberState, now: Int) -> Heartbeat {
        beat.state = state
        beat.healthy = membership.healthy
        beat.fenced = membership.fence != nil
        beat.leader = membership.leader == config.node.id
        beat.weight = membership.weight
        beat.sequence += 1
        beat.viewDigest = runningDigest ?? membership.view.digest(seed: membership.seed)
        beat.echoes = echoes(now: now)
        beat.deadlineMilliseconds = membership.announceDeadline(now: now)
        return beat
    }

    /// What this node hears: an echo per live peer, and one per challenge waiting for its answer (this node's own ID
    /// included: another process with it can then prove it hears this node).
    private func echoes(now: Int) -> [Heartbeat.Echo] {
        func age(_ at: Int) -> UInt32 { UInt32(clamping: max(0, now - at)) }
        var echoes = membership.peers.map { id, peer in
            Heartbeat.Echo(
                node: id.rawValue, live: true, ageMilliseconds: age(peer.lastHeard), incarnation: peer.incarnation,
                sequence: peer.sequence)
        }
        for (id, challenge) in challenges where membership.peers[id]?.incarnation != challenge.incarnation {
            echoes.append(
                Heartbeat.Echo(
                    node: id.rawValue, live: false, ageMilliseconds: age(challenge.at),
                    incarnation: challenge.incarnation, sequence: challenge.sequence))
        }
        let ordered = echoes.sorted { ($0.node, $0.live ? 0 : 1) < ($1.node, $1.live ? 0 : 1) }
        return Array(ordered.prefix(Heartbeat.maximumEchoes))
    }

    /// This node can reach the network again (its data path is back, or it heard the farm after a cut): it asks for
    /// its neighbours again and heartbeats every peer at full rate for a while, so that the farm hears it at once.
    private mutating func backOnTheNetwork(now: Int, into actions: inout [NodeAction]) {
        pacing.resume(now: now)
        actions.append(.refreshNeighbours)
    }

    /// The peers that get this node's heartbeats (`HeartbeatPacing`).
    var awayPeers: Set<NodeID> { Set(config.peers.map(\.id).filter { pacing.isAway($0) }) }

    /// Sends the heartbeat when it is due; called again after every heartbeat taken in, so that a burst of view
    /// changes (each builds a table) does not hold this node's own heartbeats back.
    private mutating func beatIfDue(now: Int, into actions: inout [NodeAction]) {
        let warning = warningDue
        guard now >= nextBeat || warning.map({ now >= $0 }) == true else { return }
        let recipients = pacing.recipients(of: config.peers.map(\.id), now: now) { id in
            // A peer whose challenge waits gets every heartbeat: it answers the next one.
            min(membership.silence(of: id, now: now), challenges[id].map { now - $0.at } ?? Int.max)
        }
        actions.append(.send(nextHeartbeat(state: membership.state, now: now), to: recipients))
        lastBeat = now
        guard now >= nextBeat else { return }  // a warning: the regular heartbeats keep their pace
        nextBeat += config.farm.heartbeatIntervalMilliseconds
        if nextBeat < now { nextBeat = now + config.farm.heartbeatIntervalMilliseconds }
    }

    /// When a peer's silence reached the early window after the last heartbeat: this node tells it at once that it
    /// does not hear it, so the peer stands down (`Membership.unheardBy`) before this node declares it dead and
    /// takes its buckets. A regular heartbeat could leave as late as the deadline itself.
    private var warningDue: Int? {
        membership.earlyWindowEnds.filter { $0 > lastBeat }.min()
    }

    /// When the next heartbeat is due (the I/O loop waits for heartbeats until then).
    var nextBeatDue: Int { min(nextBeat, warningDue ?? Int.max) }

    /// When the I/O loop must turn next, heartbeats or not: a heartbeat due, or a silent peer's deadline.
    var nextTurnDue: Int { min(nextBeatDue, membership.nextExpiry ?? Int.max) }

    /// How often to ping the witness: every heartbeat while a peer has been silent for more than one interval and a
    /// half (an answer newer than its last word must be there when it is declared dead), once a second otherwise.
    func witnessPingInterval(now: Int) -> Int {
        let interval = config.farm.heartbeatIntervalMilliseconds
        return membership.someoneSilent(now: now, longerThan: interval * 3 / 2) ? interval : 1000
    }

    private func macs() -> [UInt16: UInt64] {
        Dictionary(uniqueKeysWithValues: membership.peers.map { ($0.key.rawValue, $0.value.mac) })
            .merging([config.node.id.rawValue: interfaceMAC]) { $1 }
    }

    /// The engine state for the current view; `handover`: keep and add the marks of planned moves. A fenced node gets
    /// an empty state without marks: it must not keep serving even the connections it knew.
    private mutating func nextState(handover: Bool) -> EngineState {
        builtLeader = membership.leader
        builtFenced = membership.fence != nil
        if builtFenced {
            return states.state(for: .empty, alive: [], leader: nil, macs: macs(), handover: false)
        }
        return states.state(
            for: membership.view, alive: Set(membership.peers.keys).union([config.node.id]),
            stopped: membership.stoppedPeers, leader: membership.leader, macs: macs(), handover: handover)
    }

    private mutating func apply(_ events: [MembershipEvent], now: Int, into actions: inout [NodeAction]) {
        var rebuild = false
        for event in events {
            // A fence says what this node heard of each peer: the log line an operator reads first.
            let detail = if case .fenced = event { " (\(membership.hearing(now: now)))" } else { "" }
            actions.append(.log(event.level, event.description + detail))
            switch event {
            case .unfenced:
                rebuild = true
                backOnTheNetwork(now: now, into: &actions)
            // A stopped peer gone for good (its restart window ended): its connections' marks go.
            case .viewChanged, .fenced, .peerLeft: rebuild = true
            case .peerDied, .peerRefused: lastFailover = (now, event.description)
            // Not a change of the farm: the status says it in its own line.
            case .heardLate:
                lateLogged = true
                continue
            default: break
            }
            // A fence is said at once: the peers take this node's buckets as soon as they hear it.
            if case .fenced = event { nextBeat = min(nextBeat, now) }
            lastChange = (now, event.description)
        }
        guard rebuild || membership.leader != builtLeader || (membership.fence != nil) != builtFenced else { return }
        let handover = membership.fence == nil
        var state = nextState(handover: handover)
        // Release before acquire: in flood mode every node sees every frame, so a bucket taken from a live node is
        // served only once the peers report the new view (they have let it go). A peer may not have heard this node
        // yet (a NIC back up: this node hears them, they do not hear it for a while): meanwhile the peer serves the
        // bucket, so holding loses nothing. After `holdLimitMilliseconds` without agreement the bucket is taken
        // anyway (a peer whose view differs for another reason must not leave it unserved for ever). A view change that
        // takes only a dead node's buckets holds nothing: nobody else serves them (marks carried from a join within the
        // handover window made every failover shortly after a join wait for the peers' next heartbeat).
        if config.farm.delivery == .flood && !membership.peers.isEmpty && states.takesFromLivePeer {
            state.hold(states.takenFromLivePeers)
            holdSince = now
            holdUntil = now + Self.holdLimitMilliseconds
        } else {
            holdUntil = nil
        }
        swap(state, into: &actions)
        // The leader announces on every change of view: another node may have claimed the role (and, directed, the
        // switch port of the virtual MAC) for a moment while the views disagreed; its engine re-announces every
        // 200 ms anyway.
        let isLeader = membership.leader == config.node.id
        if isLeader { actions.append(.announce) }
        handoverUntil = handover ? now + handoverMilliseconds : nil
        actions.append(
            .log(
                .info,
                "serving \(states.shares[config.node.id] ?? 0) of \(states.table.count) buckets (table "
                    + "\(states.generation))\(isLeader ? ", ARP leader" : "")"
                    + "\(isLeader && config.farm.delivery != .flood ? " and director" : "")"
                    + "\(membership.fence.map { ", fenced: \($0)" } ?? "")"))
    }

    /// Counts and logs the start of each conflict over the leader's role (the engine state follows the leader in
    /// `apply`, which every step calls).
    private mutating func noteLeaderConflict(into actions: inout [NodeAction]) {
        let conflict = membership.leaderConflict
        if let conflict, !inConflict {
            leaderConflicts += 1
            actions.append(.log(.warning, "node \(conflict) also claims the leader's role: the lower ID keeps it"))
        }
        inConflict = conflict != nil
    }

    /// Notes (and logs once) a peer whose heartbeats name another delivery mode: a frame one node expects from the
    /// switch the other never sends, so part of the farm's clients go unanswered.
    private mutating func noteDelivery(of heartbeat: Heartbeat, into actions: inout [NodeAction]) {
        let theirs = heartbeat.delivery.flatMap { $0 == config.farm.delivery ? nil : $0 }
        guard deliveryDisagreements[heartbeat.sender] != theirs else { return }
        deliveryDisagreements[heartbeat.sender] = theirs
        if let theirs {
            actions.append(
                .log(
                    .warning,
                    "node \(heartbeat.sender) uses \(theirs) delivery, this node \(config.farm.delivery): every node "
                        + "must use the same (set it alike everywhere, or auto on every node and restart them together)"
                ))
        }
    }

    /// Applies what a reload can (the weight, the rules, the checkers) and says which changed keys wait for a restart.
    private mutating func reload(_ file: FarmConfig, now: Int, into actions: inout [NodeAction]) {
        let waiting = config.restartOnlyChanges(to: file)
        if !waiting.isEmpty {
            actions.append(
                .log(
                    .warning,
                    "reload: \(waiting.joined(separator: ", ")) changed, which take effect only when lbnode starts: "
                        + "running with the old values until `systemctl restart`"))
        }
        let next = config.reloaded(from: file)
        config = next
        states.replaceRules(next.rules)
        actions.append(.restartCheckers(next))
        actions.append(
            .log(
                .notice,
                "reloaded: weight \(next.node.weight), \(next.rules.count) rules, \(next.checkers.count) checkers"))
        let events = membership.setLocal(weight: next.node.weight)
        if events.isEmpty {  // same view: the rules still need a new state
            swap(nextState(handover: handoverUntil != nil), into: &actions)
        }
        apply(events, now: now, into: &actions)
    }
}
