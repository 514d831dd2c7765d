import Hashing

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
    /// The view (active, healthy members) changed.
    case viewChanged(from: MembershipView, to: MembershipView)

    var description: String {
        switch self {
        case .peerUp(let id, let state): "node \(id) is up (\(state))"
        case .peerChanged(let id, let state, let healthy): "node \(id) is \(state)\(healthy ? "" : ", unhealthy")"
        case .peerLeft(let id): "node \(id) left"
        case .peerDied(let id, let silent): "node \(id) is dead: silent for \(silent) ms"
        case .viewChanged(let old, let new): "view \(old) -> \(new)"
        }
    }
}

/// One node's knowledge of the farm, driven by heartbeats and a monotonic millisecond clock passed in (so tests use a
/// manual clock). Pure logic: no sockets, no timers.
///
/// The view is the set of members that are alive (heard from within `deadAfter` intervals), `active` and healthy,
/// this node included when it is. The leader (ARP, and the director in directed mode) is the lowest ID in the view or
/// draining: a draining director keeps directing until it leaves, so the connections it knows stay where they are.
struct Membership {
    struct Peer: Equatable {
        var state: MemberState
        var healthy: Bool
        var weight: UInt32
        var viewDigest: UInt64
        var mac: UInt64
        var lastHeard: Int
    }

    let me: NodeID
    let intervalMilliseconds: Int
    let deadAfter: Int
    let seed: FarmSeed
    private(set) var state: MemberState = .joining
    private(set) var healthy = true
    private(set) var weight: UInt32
    private(set) var peers: [NodeID: Peer] = [:]
    /// When this node started joining: it may become active once every live peer has had time to see it.
    private(set) var joinedAt: Int
    private(set) var view: MembershipView = .empty

    init(me: NodeID, weight: UInt32, intervalMilliseconds: Int, deadAfter: Int, seed: FarmSeed, now: Int) {
        self.me = me
        self.weight = weight
        self.intervalMilliseconds = intervalMilliseconds
        self.deadAfter = deadAfter
        self.seed = seed
        joinedAt = now
    }

    /// Milliseconds of silence after which a peer is dead.
    var deadline: Int { intervalMilliseconds * deadAfter }

    /// The lowest ID in the view or draining: it answers ARP for the VIP and, in directed mode, directs.
    var leader: NodeID? {
        let draining = peers.filter { $0.value.state == .draining }.map(\.key) + (state == .draining ? [me] : [])
        return (view.members.map(\.id) + draining).min()
    }

    /// Whether every live peer reports the same view as this node.
    var agreed: Bool {
        let digest = view.digest(seed: seed)
        return peers.values.allSatisfy { $0.viewDigest == digest }
    }

    /// A joining node may go active once it has announced itself for `deadAfter` intervals: every live peer has seen
    /// it by then, so it takes buckets only when the others see it.
    func mayActivate(now: Int) -> Bool { state == .joining && now - joinedAt >= deadline }

    mutating func receive(_ heartbeat: Heartbeat, now: Int) -> [MembershipEvent] {
        let record = Peer(
            state: heartbeat.state, healthy: heartbeat.healthy, weight: heartbeat.weight,
            viewDigest: heartbeat.viewDigest, mac: heartbeat.mac, lastHeard: now)
        var events: [MembershipEvent] = []
        if heartbeat.state == .left {
            if peers.removeValue(forKey: heartbeat.sender) != nil { events.append(.peerLeft(heartbeat.sender)) }
        } else if let previous = peers[heartbeat.sender] {
            if previous.state != record.state || previous.healthy != record.healthy {
                events.append(.peerChanged(heartbeat.sender, record.state, healthy: record.healthy))
            }
            peers[heartbeat.sender] = record
        } else {
            peers[heartbeat.sender] = record
            events.append(.peerUp(heartbeat.sender, record.state))
        }
        return events + rebuildView()
    }

    /// Takes out the peers that have been silent too long.
    mutating func tick(now: Int) -> [MembershipEvent] {
        var events: [MembershipEvent] = []
        for (id, peer) in peers.sorted(by: { $0.key < $1.key }) where now - peer.lastHeard > deadline {
            peers.removeValue(forKey: id)
            events.append(.peerDied(id, silentMilliseconds: now - peer.lastHeard))
        }
        return events + rebuildView()
    }

    /// This node's own state, health or weight changed (activation, drain, a checker, a reload).
    mutating func setLocal(state: MemberState? = nil, healthy: Bool? = nil, weight: UInt32? = nil) -> [MembershipEvent]
    {
        if let state { self.state = state }
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
