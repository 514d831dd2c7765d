import Hashing
import Logging

/// What happened to the farm, for the log (one line each) and for rebuilding the table.
enum MembershipEvent: Equatable, Sendable, CustomStringConvertible {
    /// A peer was heard from for the first time (or again after it had died or left).
    case peerUp(NodeID, MemberState)
    /// A peer changed state (joining → active, active → draining, ...), or its health.
    case peerChanged(NodeID, MemberState, healthy: Bool)
    /// A peer said it leaves: taken out at once.
    case peerLeft(NodeID)
    /// A peer was silent for `deadAfter` intervals.
    case peerDied(NodeID, silentMilliseconds: Int)
    /// A peer's kernel refused this node's heartbeat (port unreachable): its host runs, its lbnode does not.
    case peerRefused(NodeID)
    /// A peer was heard again after a silence that lengthened the deadline (`DeadlineTolerance`) to `deadline`.
    case heardLate(NodeID, silentMilliseconds: Int, intervalMilliseconds: Int, deadline: Int)
    /// The view (active, healthy members) changed.
    case viewChanged(from: MembershipView, to: MembershipView)
    /// This node stopped serving (`Membership.FenceReason`) until it hears the current view.
    case fenced(Membership.FenceReason)
    /// This node heard the current view again, with quorum: it rejoins.
    case unfenced

    var description: String {
        switch self {
        case .peerUp(let id, let state): "node \(id) is up (\(state))"
        case .peerChanged(let id, let state, let healthy): "node \(id) is \(state)\(healthy ? "" : ", unhealthy")"
        case .peerLeft(let id): "node \(id) left"
        case .peerDied(let id, let silent): "node \(id) is dead: silent for \(silent) ms"
        case .peerRefused(let id): "node \(id) is dead: its host refused our heartbeat (port unreachable: no lbnode)"
        case .heardLate(let id, let silent, let interval, let deadline):
            "node \(id) heard again after \(silent) ms of silence (heartbeats every \(interval) ms; this host or the "
                + "network delays them): peers now get \(deadline) ms of silence before they are declared dead, and "
                + "are told"
        case .viewChanged(let old, let new): "view \(old) -> \(new)"
        case .fenced(let reason): "fenced (\(reason)): serving nothing until this node hears the current view"
        case .unfenced: "heard the current view with quorum: rejoining"
        }
    }

    /// How loud the log says it: a death, a fence, a peer heard late or an unhealthy peer is a warning (something
    /// broke or is about to), a peer that leaves or a fence lifted a notice, the rest information.
    var level: Logger.Level {
        switch self {
        case .peerDied, .peerRefused, .fenced, .heardLate: .warning
        case .peerChanged(_, _, let healthy): healthy ? .info : .warning
        case .peerLeft, .unfenced: .notice
        case .peerUp, .viewChanged: .info
        }
    }
}

/// One node's knowledge of the farm, driven by heartbeats and a monotonic millisecond clock passed in (so tests use a
/// manual clock). Pure logic: no sockets, no timers.
///
/// The view is the set of members that are alive (heard from within `deadAfter` intervals), `active` and healthy,
/// this node included when it is. The leader (ARP, and the director in directed mode) is the lowest ID in the view or
/// draining: a draining director keeps directing until it leaves, so the connections it knows stay where they are.
///
/// Split brain. With `quorum: majority` a node serves only while it hears more than half of the farm (the configured
/// nodes but those that left on purpose; exactly half counts when it holds the lowest of their IDs, so two halves
/// never both serve). A node that loses quorum, wakes from a stall longer than the deadline, or meets its own ID at a
/// lower address is *fenced*: it goes back to joining, so its buckets go to the others (its engine gets an empty
/// state), and it rejoins as a new node would only once it has quorum and a fresh heartbeat from every live peer.
/// With a witness (an address every node pings, a gateway), a node that does not hear every peer serves only while the
/// witness answers: a node cut off from the network fences (`isolated`) rather than serve beside the others.
struct Membership {
    /// Which side of a partition may serve.
    enum Quorum: String, Sendable, CaseIterable {
        /// More than half of the farm (exactly half with the lowest ID).
        case majority
        /// Every node serves what its own view gives it (two-node farms without a witness).
        case none
    }

    enum FenceReason: String, Sendable, CustomStringConvertible {
        case noQuorum = "no quorum"
        case isolated = "peers silent and the witness does not answer: this node is cut off"
        case stalled = "this node was stalled longer than the failover time"
        case duplicateID = "another node with this ID at a lower address"
        case unheard = "a live peer that can serve without this node does not hear it"
        case deafPair = "a peer hears a node with a lower ID that this node does not hear: the higher ID stands down"
        var description: String { rawValue }
    }

    struct Peer: Equatable {
        var state: MemberState
        var healthy: Bool
        var fenced = false
        var leader = false
        var weight: UInt32
        var viewDigest: UInt64
        var mac: UInt64
        var lastHeard: Int
        var incarnation: UInt64 = 0
        var sequence: UInt64 = 0
        /// What the peer hears (`Heartbeat.Echo`), as of its last heartbeat.
        var echoes: [Heartbeat.Echo] = []
        /// This incarnation of the peer has echoed this node's current incarnation as live: it knows this node, so it
        /// can tell when it loses it (`Membership.deafTo`).
        var knowsMe = false
        /// Since when this incarnation of the peer is heard without a break.
        var since: Int = 0
        /// The deadline the peer applies to a silent node, as its last heartbeat said (`DeadlineTolerance`; 0: not
        /// said, the farm's).
        var deadline: Int = 0
    }

    let me: NodeID
    /// This node's incarnation (what a peer that hears it echoes).
    let incarnation: UInt64
    let intervalMilliseconds: Int
    let deadAfter: Int
    let seed: FarmSeed
    /// Every node of the farm, this one included.
    let configured: Set<NodeID>
    let quorum: Quorum
    /// Peers whose last word was that they leave (they do not count towards the quorum until heard again).
    private(set) var departed: Set<NodeID> = []
    /// The incarnation of each peer whose kernel refused this node's heartbeat (`refused(by:)`): that lbnode is gone,
    /// so a live peer's echo of it (sent before the peer noticed) makes no majority (`servesWithout`).
    private(set) var goneIncarnations: [NodeID: UInt64] = [:]
    /// Whether a witness is configured. While some peers are silent, a node serves only if the witness vouches for
    /// it (`witnessVouches`): a node cut off from the network must not serve, a node whose peers died must.
    let hasWitness: Bool
    /// When the latest ping the witness answered was sent (ms), or nil.
    private(set) var witnessAnsweredAt: Int?
    /// When each peer was last heard, kept after it died (a peer never heard: since this node started).
    private var lastHeardEver: [NodeID: Int] = [:]
    /// The last heartbeat of every peer ever heard, kept after it died or left (for the status: a node that never
    /// came back must stay visible).
    private(set) var lastKnown: [NodeID: Peer] = [:]
    /// The latest time this membership was told of (for the properties that take no time).
    private(set) var latest: Int
    /// Why this node serves nothing, or nil.
    private(set) var fence: FenceReason?
    /// Live peers not heard from since this node was fenced.
    private var unheardSinceFence: Set<NodeID> = []
    private(set) var state: MemberState = .joining
    private(set) var healthy = true
    private(set) var weight: UInt32
    private(set) var peers: [NodeID: Peer] = [:]
    /// When this node started joining: it may become active once every live peer has had time to see it.
    private(set) var joinedAt: Int
    private(set) var view: MembershipView = .empty
    /// The deadline this node applies, longer while its host drops received frames or its peers are heard late.
    private(set) var tolerance: DeadlineTolerance

    init(
        me: NodeID, incarnation: UInt64 = 1, weight: UInt32, intervalMilliseconds: Int, deadAfter: Int, seed: FarmSeed,
        now: Int, peers: Set<NodeID> = [], quorum: Quorum = .none, witness: Bool = false
    ) {
        self.incarnation = incarnation
        hasWitness = witness
        latest = now
        self.me = me
        configured = peers.union([me])
        self.quorum = quorum
        self.weight = weight
        self.intervalMilliseconds = intervalMilliseconds
        self.deadAfter = deadAfter
        self.seed = seed
        joinedAt = now
        tolerance = DeadlineTolerance(intervalMilliseconds: intervalMilliseconds, deadAfter: deadAfter)
        lastHeardEver = Dictionary(uniqueKeysWithValues: peers.map { ($0, now) })
    }

    /// How old the witness's last answer may be while some peer is silent: a second, or three intervals when they are
    /// longer (the witness is pinged once per interval at most, so a fixed second would fence every survivor of a
    /// death at an interval of 500 ms or more).
    var witnessTimeoutMilliseconds: Int { max(1000, 3 * intervalMilliseconds) }

    /// Milliseconds of silence after which a peer is dead, the farm's: `appliedDeadline` may be longer.
    var deadline: Int { intervalMilliseconds * deadAfter }

    /// How long after this node's last heartbeat no live peer can have declared it dead yet: the shortest deadline
    /// the live peers say they apply, less an interval, at least the farm's. A peer applies what it announced for
    /// `DeadlineTolerance.longMilliseconds` after it said so, and this node's last heartbeat may have left up to about
    /// an interval after the peer's announcement. While the peers hear this node late, a stall of it then costs no
    /// frame its engine received meanwhile.
    var leaseMilliseconds: Int {
        let said = peers.values.filter { $0.state != .stopped }.map { $0.deadline - intervalMilliseconds }
        return max(deadline, said.min() ?? deadline)
    }

    /// The lowest ID in the view or draining: it answers ARP for the VIP and, in directed mode, directs. Should a
    /// peer with a lower ID claim the role while the views differ, it keeps it (nobody directs twice).
    var leader: NodeID? {
        guard fence == nil else { return nil }
        return leaderConflict ?? viewLeader
    }

    /// The lowest ID in the view or draining, before any claim.
    private var viewLeader: NodeID? {
        let draining = peers.filter { $0.value.state == .draining }.map(\.key) + (state == .draining ? [me] : [])
        return (view.members.map(\.id) + draining).min()
    }

    /// A peer with a lower ID that claims the leader's role while this node's view gives it to this node.
    var leaderConflict: NodeID? {
        guard viewLeader == me else { return nil }
        return peers.filter { $0.value.leader && $0.key < me }.map(\.key).min()
    }

    /// Whether every configured node (but those that left) is alive and reports the same view as this node.
    var agreed: Bool {
        let digest = view.digest(seed: seed)
        return configured.subtracting(departed).union(peers.keys).subtracting([me]).subtracting(stoppedPeers)
            .allSatisfy { peers[$0]?.viewDigest == digest }
    }

    /// Whether every live peer reports the same view as this node (a move between live nodes is then known to both)
    /// in a heartbeat taken in after `since` (ms): an older one may predate what changed. A peer that says it is
    /// fenced serves nothing (its engine was given an empty state before that heartbeat left), so its view does not
    /// matter: one fenced because it does not hear a node may never agree.
    func peersAgree(since: Int = Int.min) -> Bool {
        let digest = view.digest(seed: seed)
        return peers.values.allSatisfy {
            $0.state == .stopped || ($0.lastHeard > since && ($0.fenced || $0.viewDigest == digest))
        }
    }

    /// The nodes that count towards the quorum: every configured one but those that left on purpose.
    var expectedVotes: Int { configured.subtracting(departed).count }

    /// The nodes alive and not departed, this one included.
    var liveVotes: Int { 1 + peers.values.filter { $0.state != .stopped }.count }

    /// How long the peers keep a stopped node's connections for it (`MemberState.stopped`): a restart takes a second
    /// or two; a node not back by then is taken for gone.
    static let restartWindowMilliseconds = 15_000

    /// Peers that stopped and are expected back (`MemberState.stopped`).
    var stoppedPeers: Set<NodeID> { Set(peers.filter { $0.value.state == .stopped }.keys) }

    /// Whether this side of a partition may serve (always, with `quorum: none` and no witness).
    var hasQuorum: Bool { hasQuorum(heardWithin: appliedDeadline(now: latest), now: latest) }

    /// Whether this side may serve, counting only the peers heard within `window` ms of `now`.
    func hasQuorum(heardWithin window: Int, now: Int) -> Bool {
        quorumFailure(heardWithin: window, now: now) == nil
    }

    /// Why this side may not serve (`noQuorum`, or `isolated`: some peers silent and the witness too), or nil.
    /// `early`: the peers that vote for the majority are those of the early check (`votesEarly`), not all heard within
    /// `window`; and a peer that may soon declare this node dead (`stillHearsMe`) counts as silent, for the witness to
    /// vouch for.
    private func quorumFailure(heardWithin window: Int, now: Int, early: Bool = false) -> FenceReason? {
        // Built only where used: this runs at every heartbeat.
        func live() -> [NodeID] {
            peers.filter { id, peer in
                peer.state != .stopped && now - peer.lastHeard <= window && (!early || stillHearsMe(id, peer, now: now))
            }.map(\.key)
        }
        if hasWitness {
            let silent = configured.subtracting(departed).subtracting(live()).subtracting([me])
            if !silent.isEmpty,
                !witnessVouches(
                    since: silent.compactMap { lastHeardEver[$0] }.max().map { $0 + intervalMilliseconds }, now: now)
            {
                return .isolated
            }
        }
        guard quorum == .majority else { return nil }
        let voters = early ? earlyVoters(now: now) : live()
        guard !isMajority(Set(voters).union([me])) else { return nil }
        return .noQuorum
    }

    /// For the early checks: whether `peer` heard this node recently enough not to declare it dead before this node
    /// stops (`heardMe` within the peer's early window, as `votesEarly` asks of a voter), or could not take its buckets
    /// anyway (`servesWithout`). A peer this node heard a moment ago may have last heard this node most of an interval
    /// earlier: were the two cut apart, the peer's deadline runs from that earlier moment.
    private func stillHearsMe(_ id: NodeID, _ peer: Peer, now: Int) -> Bool {
        !servesWithout(id, peer) || now - heardMe(peer) <= earlyWindow(of: peer)
    }

    /// The peers that vote for this node's majority in the early check (`votesEarly`).
    private func earlyVoters(now: Int) -> [NodeID] {
        peers.filter { $0.value.state != .stopped && votesEarly($0.key, $0.value, now: now) }.map(\.key)
    }

    /// Whether `peer` still counts for this node's quorum in the early check. A peer that could serve without this
    /// node (`servesWithout`) counts only while this node heard it within the early window and it heard this node
    /// within its own (`heardMe`): were this node cut off, that peer would take its buckets at its deadline, so this
    /// node must stop before. A peer that could not (it hears nobody else of a majority) cannot take them: it counts
    /// until it is dead, so a peer stalled for most of the deadline (a busy host) fences nobody.
    private func votesEarly(_ id: NodeID, _ peer: Peer, now: Int) -> Bool {
        guard servesWithout(id, peer) else { return now - peer.lastHeard <= appliedDeadline(now: now) }
        return now - peer.lastHeard <= earlyWindow(now: now) && now - heardMe(peer) <= earlyWindow(of: peer)
    }

    /// The witness answered a ping sent after `since` and within the last `witnessTimeoutMilliseconds`. `since` is an
    /// interval after the last word of the peers now silent: had they still been reachable then, their next heartbeat
    /// would have come, so a cut that silenced them came earlier, and the answer crossed the network after it.
    private func witnessVouches(since: Int?, now: Int) -> Bool {
        guard let answered = witnessAnsweredAt else { return false }
        return answered > (since ?? Int.min) && now - answered <= witnessTimeoutMilliseconds
    }

    /// Whether a peer has been silent longer than `milliseconds` (or is not heard at all): the I/O loop then pings
    /// the witness at every heartbeat, so that an answer newer than the peer's last word is there when it is
    /// declared dead.
    func someoneSilent(now: Int, longerThan milliseconds: Int) -> Bool {
        configured.subtracting(departed).subtracting([me]).contains { id in
            peers[id].map { now - $0.lastHeard > milliseconds } ?? true
        }
    }

    /// Whether `voters` (a node and the nodes it hears) are a majority of the farm: more than half, or exactly half
    /// with the lowest ID among them.
    func isMajority(_ voters: Set<NodeID>) -> Bool {
        let expected = expectedVotes
        if voters.count * 2 > expected { return true }
        guard voters.count * 2 == expected, let lowest = configured.subtracting(departed).min() else { return false }
        return voters.contains(lowest)
    }

    /// The witness answered a ping sent at `at` (only with a witness configured).
    mutating func witnessAnswered(at: Int) {
        witnessAnsweredAt = max(witnessAnsweredAt ?? at, at)
    }

    /// Milliseconds since peer `id` was last heard (since this node started, if never).
    func silence(of id: NodeID, now: Int) -> Int { now - (lastHeardEver[id] ?? joinedAt) }

    /// Whether peer `id` left on purpose (its last word was `.left`).
    func hasDeparted(_ id: NodeID) -> Bool { departed.contains(id) }

    /// Back to joining (an undrain): active again once every live peer has had time to see it.
    mutating func rejoin(now: Int) -> [MembershipEvent] {
        joinedAt = now
        return setLocal(state: .joining)
    }

    /// A joining node may go active once it has announced itself for `deadAfter` intervals and every live peer hears
    /// it, so it takes buckets only when the others see it; and only if it hears every node its peers hear. A fenced
    /// node, or one without quorum, may not.
    func mayActivate(now: Int) -> Bool {
        state == .joining && now - joinedAt >= deadline && fence == nil
            && hasQuorum(heardWithin: appliedDeadline(now: now), now: now)
            && unheardBy(now: now) == nil && unheardButAlive() == nil
    }

    /// Stops serving: back to joining (the buckets go to the others) until `fence` lifts (see `liftFence`).
    mutating func fence(_ reason: FenceReason, now: Int) -> [MembershipEvent] {
        guard fence == nil else { return [] }
        fence = reason
        unheardSinceFence = Set(peers.keys)
        if state == .active { state = .joining }
        return [.fenced(reason)] + rebuildView()
    }

    /// Lifts the fence once this node has quorum, its reason is gone (`stillFenced`), and it heard every live peer
    /// since: it then rejoins as a new node does (active after the deadline).
    mutating func liftFence(now: Int, stillFenced: Bool = false) -> [MembershipEvent] {
        guard fence != nil, !stillFenced, hasQuorum(heardWithin: appliedDeadline(now: now), now: now),
            unheardSinceFence.isEmpty,
            unheardBy(now: now) == nil, deafTo(now: now) == nil
        else {
            return []
        }
        fence = nil
        joinedAt = now
        return [.unfenced]
    }

    /// Fences when the quorum is lost (call after every change of the peers). The early check (`votesEarly`): a peer
    /// that could serve without this node votes only if it heard this node within the early window (`heardMe`), so
    /// that a node cut off stops serving half an interval before the others may declare it dead and take its buckets
    /// (not earlier: a starved machine would fence for nothing).
    ///
    /// The deaf-pair rule (`deafTo`) is checked only once a turn's heartbeats are all in (`tick`): one of them may
    /// show that this node hears the node another one vouches for.
    private mutating func checkQuorum(now: Int, turnDone: Bool = false) -> [MembershipEvent] {
        guard fence == nil, state != .joining,
            let reason = quorumFailure(heardWithin: earlyWindow(now: now), now: now, early: true)
                ?? (unheardBy(now: now) != nil ? .unheard : nil)
                ?? (turnDone && deafTo(now: now) != nil ? .deafPair : nil)
        else {
            return []
        }
        return fence(reason, now: now)
    }

    /// Takes in the host's count of received frames it dropped; true when it grew enough to be a sign of loss (this
    /// node then applies, and announces, the long deadline: `DeadlineTolerance`).
    mutating func noteReceiveDrops(_ count: UInt64, now: Int) -> Bool { tolerance.note(drops: count, now: now) }

    /// The deadline a heartbeat sent now says (`Heartbeat.deadlineMilliseconds`).
    mutating func announceDeadline(now: Int) -> UInt16 { UInt16(clamping: tolerance.announce(now: now)) }

    mutating func receive(_ heartbeat: Heartbeat, now: Int) -> [MembershipEvent] {
        latest = max(latest, now)
        lastHeardEver[heartbeat.sender] = now
        let previous = peers[heartbeat.sender]
        var events = noteSilence(of: heartbeat, now: now).map { [$0] } ?? []
        var record = Peer(
            state: heartbeat.state, healthy: heartbeat.healthy, fenced: heartbeat.fenced, leader: heartbeat.leader,
            weight: heartbeat.weight, viewDigest: heartbeat.viewDigest, mac: heartbeat.mac, lastHeard: now,
            incarnation: heartbeat.incarnation, sequence: heartbeat.sequence, echoes: heartbeat.echoes,
            since: previous.flatMap { $0.incarnation == heartbeat.incarnation ? $0.since : nil } ?? now,
            deadline: Int(heartbeat.deadlineMilliseconds))
        let echoesMe = heartbeat.echo(of: me).map { $0.live && $0.incarnation == incarnation } ?? false
        let known = lastKnown[heartbeat.sender]  // kept while it was dead: it still knows this node when heard again
        record.knowsMe = echoesMe || (known?.incarnation == heartbeat.incarnation && known?.knowsMe == true)
        lastKnown[heartbeat.sender] = record
        unheardSinceFence.remove(heartbeat.sender)
        if heartbeat.state == .left {
            departed.insert(heartbeat.sender)
            if peers.removeValue(forKey: heartbeat.sender) != nil { events.append(.peerLeft(heartbeat.sender)) }
        } else if heartbeat.state == .stopped {
            // Out of the view at once; kept among the peers (its connections' marks stay) until the restart window
            // ends, but no longer counted for the quorum or pinged for.
            departed.insert(heartbeat.sender)
            if peers[heartbeat.sender]?.state != .stopped {
                events.append(.peerChanged(heartbeat.sender, .stopped, healthy: record.healthy))
            }
            peers[heartbeat.sender] = record
        } else if let previous = peers[heartbeat.sender] {
            departed.remove(heartbeat.sender)
            if previous.state != record.state || previous.healthy != record.healthy {
                events.append(.peerChanged(heartbeat.sender, record.state, healthy: record.healthy))
            }
            peers[heartbeat.sender] = record
        } else {
            departed.remove(heartbeat.sender)
            peers[heartbeat.sender] = record
            events.append(.peerUp(heartbeat.sender, record.state))
        }
        events += rebuildView()
        return events + checkQuorum(now: now)
    }

    /// How long a peer was silent before `heartbeat`, for the deadline under lateness (`DeadlineTolerance`): the same
    /// incarnation, live or declared dead a moment ago (the clearest sign that a silence was lateness; `lastKnown`
    /// keeps both), neither stopped nor leaving, silent up to the long deadline (longer: away, or paced as away).
    /// Returns the event when the silence lengthened the deadline.
    private mutating func noteSilence(of heartbeat: Heartbeat, now: Int) -> MembershipEvent? {
        guard let last = lastKnown[heartbeat.sender], last.incarnation == heartbeat.incarnation,
            ![.stopped, .left].contains(last.state), ![.stopped, .left].contains(heartbeat.state)
        else { return nil }
        let silence = now - last.lastHeard
        guard silence <= tolerance.longMilliseconds, tolerance.note(silence: silence, now: now) else { return nil }
        return .heardLate(
            heartbeat.sender, silentMilliseconds: silence, intervalMilliseconds: intervalMilliseconds,
            deadline: tolerance.lateDeadline(now: now))
    }

    /// Takes out the peers that have been silent too long.
    mutating func tick(now: Int) -> [MembershipEvent] {
        latest = max(latest, now)
        var events: [MembershipEvent] = []
        for (id, peer) in peers.sorted(by: { $0.key < $1.key })
        where now - peer.lastHeard > silenceAllowed(peer, now: now) {
            if peer.state == .stopped {
                peers.removeValue(forKey: id)
                events.append(.peerLeft(id))  // it said it stopped: gone, not dead (departed since)
                continue
            }
            peers.removeValue(forKey: id)
            unheardSinceFence.remove(id)
            events.append(.peerDied(id, silentMilliseconds: now - peer.lastHeard))
        }
        events += rebuildView()
        return events + checkQuorum(now: now, turnDone: true)
    }

    /// How long `peer` may stay silent before it is taken out: the deadline; for a peer that does not hear this node,
    /// two of its paced heartbeats more (`HeartbeatPacing`: it then sends only one a second); for a stopped peer, the
    /// restart window.
    private func silenceAllowed(_ peer: Peer, now: Int) -> Int {
        if peer.state == .stopped { return max(deadline, Self.restartWindowMilliseconds) }
        return appliedDeadline(now: now) + (hears(peer, now: now) ? 0 : 2 * HeartbeatPacing.awayIntervalMilliseconds)
    }

    /// When `tick` must run next to take a silent peer out on time (nil without peers): the loop waits for heartbeats
    /// until then, not until its next heartbeat, which may be most of an interval later.
    var nextExpiry: Int? {
        let expiries = peers.values.map { $0.lastHeard + silenceAllowed($0, now: latest) + 1 }
        guard fence == nil, state != .joining, quorum == .majority || hasWitness else { return expiries.min() }
        // The early checks fail one millisecond after the window ends, not as it ends.
        let earlyChecks = peers.values.filter { $0.state != .stopped }.flatMap {
            [heardMe($0) + earlyWindow(of: $0), $0.lastHeard + earlyWindow(now: latest)].map { $0 + 1 }
                .filter { $0 > latest }
        }
        return (expiries + earlyChecks).min()
    }

    /// Peer `id`'s kernel refused the heartbeat this node sent at `sentAt` (port unreachable): its lbnode is gone, so
    /// it is dead now, without waiting out the failover time. Only if the peer was last heard before that heartbeat
    /// left: a refusal of one sent earlier is from before the peer's lbnode listened (a node starting). A stopped
    /// peer (a restart) is away on purpose: no change.
    mutating func refused(by id: NodeID, heartbeatSentAt sentAt: Int, now: Int) -> [MembershipEvent] {
        guard let peer = peers[id], peer.state != .stopped, peer.lastHeard < sentAt else { return [] }
        goneIncarnations[id] = peer.incarnation
        peers.removeValue(forKey: id)
        unheardSinceFence.remove(id)
        return [.peerRefused(id)] + rebuildView() + checkQuorum(now: now)
    }

    /// This node's own state, health or weight changed (activation, drain, a checker, a reload).
    mutating func setLocal(state: MemberState? = nil, healthy: Bool? = nil, weight: UInt32? = nil) -> [MembershipEvent]
    {
        if let state { self.state = fence != nil && state == .active ? .joining : state }
        if let healthy { self.healthy = healthy }
        if let weight { self.weight = weight }
        return rebuildView()
    }

    private mutating func rebuildView() -> [MembershipEvent] {
        var members = peers.filter { $0.value.state == .active && $0.value.healthy }
            .map { Member(id: $0.key, weight: $0.value.weight) }
        if state == .active && healthy { members.append(Member(id: me, weight: weight)) }
        let next = (try? MembershipView(members)) ?? view
        guard next != view else { return [] }
        defer { view = next }
        return [.viewChanged(from: view, to: next)]
    }
}
