import Hashing

/// One view from asymmetric hearing (docs/architecture.md): every heartbeat echoes what its sender hears, and the node
/// that a live peer does not hear stands down.
extension Membership {
    /// Whether `peer` hears this node: its last heartbeat echoes this incarnation as a live member, heard within the
    /// early window. A peer heard for less than the early window has not had the time yet.
    func hears(_ peer: Peer, now: Int) -> Bool {
        now - peer.since < earlyWindow(of: peer) || freshEcho(of: peer) != nil
    }

    /// The peer's echo of this incarnation as a live member, heard within the peer's early window, or nil.
    private func freshEcho(of peer: Peer) -> Heartbeat.Echo? {
        guard let echo = peer.echoes.first(where: { $0.node == me.rawValue }), echo.live,
            echo.incarnation == incarnation, Int(echo.ageMilliseconds) < earlyWindow(of: peer)
        else { return nil }
        return echo
    }

    /// When `peer` last heard this node, for the early checks: as its last heartbeat's echo says (dated back by the
    /// echo's age), but no more than half an interval before this node heard the peer. The peer declares this node
    /// dead no earlier than this plus its deadline; when this node heard the peer can be up to an interval later.
    /// Bounded, so that a heartbeat a few milliseconds late does not fence this node (at 10 ms × 3 an echo's age
    /// alone would age past the early window between two heartbeats); without a fresh echo (a peer that does not
    /// hear this node is `unheardBy`'s to judge), when this node heard the peer.
    func heardMe(_ peer: Peer) -> Int {
        guard let echo = freshEcho(of: peer) else { return peer.lastHeard }
        return peer.lastHeard - min(Int(echo.ageMilliseconds), intervalMilliseconds / 2)
    }

    /// What this node hears of each configured peer, for the log line of a fence: when it last heard it and, by its
    /// echo, when the peer last heard this node.
    func hearing(now: Int) -> String {
        configured.subtracting([me]).sorted().map { id in
            guard let peer = peers[id] else { return "node \(id) \(departed.contains(id) ? "left" : "not heard")" }
            let echo = freshEcho(of: peer) != nil ? "it heard this node \(now - heardMe(peer)) ms ago" : "no fresh echo"
            return "node \(id) heard \(now - peer.lastHeard) ms ago, \(echo)"
        }.joined(separator: "; ")
    }

    /// Whether `peer` would serve without this node: it is not fenced, active or joining, and has quorum among the
    /// nodes it hears (by its echoes; with `quorum: none`, always). An echo of an lbnode whose kernel refused this
    /// node's heartbeat counts for nothing: the peer heard it before it died, and a dead node makes no majority.
    func servesWithout(_ id: NodeID, _ peer: Peer) -> Bool {
        guard !peer.fenced, peer.state == .active || peer.state == .joining else { return false }
        guard quorum == .majority else { return true }
        let heard = peer.echoes.filter { echo in
            echo.live && Int(echo.ageMilliseconds) < earlyWindow(of: peer) && echo.node != me.rawValue
                && NodeID(rawValue: echo.node).flatMap { goneIncarnations[$0] } != echo.incarnation
        }
        return isMajority(Set(heard.compactMap { NodeID(rawValue: $0.node) }).intersection(configured).union([id]))
    }

    /// The live peer that does not hear this node and would serve without it, or nil. Its view gives this node's
    /// buckets away, so this node must not serve beside it: the node that is not heard stands down (`unheard`), and
    /// the farm converges on the view of the nodes that hear each other. The peer's heartbeats say so half an
    /// interval before it declares this node dead (`NodeController` sends one as a peer's silence reaches the early
    /// window), so this node stops first.
    func unheardBy(now: Int) -> NodeID? {
        peers.sorted { $0.key < $1.key }.first { id, peer in
            !hears(peer, now: now) && servesWithout(id, peer) && !standsDownItself(id, peer)
        }?.key
    }

    /// Whether `peer`, which does not hear this node, stands down itself instead (`deafTo`): it has the higher ID,
    /// it knew this incarnation of this node, and it hears a node that hears this node, so it learns that this node
    /// is alive and that it is the one deaf to it.
    private func standsDownItself(_ id: NodeID, _ peer: Peer) -> Bool {
        guard id > me, peer.knowsMe else { return false }
        return peer.echoes.contains { echo in
            guard echo.live, echo.node != me.rawValue, Int(echo.ageMilliseconds) < earlyWindow(of: peer),
                let third = NodeID(rawValue: echo.node).flatMap({ peers[$0] }), !third.fenced
            else { return false }
            return freshEcho(of: third) != nil
        }
    }

    /// A node with a lower ID that this node no longer hears (silent for the early window, or dead) although a live
    /// peer heard the same incarnation of it an interval or more after this node last did: the two do not hear each
    /// other, or this node does not hear it, while a third hears both. Of such a pair the higher ID stands down
    /// (`deafPair`), half an interval before the lower one could declare it dead; the lower one serves on
    /// (`standsDownItself` keeps the rule above from standing it down too), so the farm converges on one owner per
    /// bucket. A node that died or was cut off from everyone is not heard later by anybody: no such node.
    func deafTo(now: Int) -> NodeID? {
        let window = earlyWindow(now: now)
        for (_, third) in peers.sorted(by: { $0.key < $1.key })
        where !third.fenced && third.state != .stopped && now - third.lastHeard <= window {
            for echo in third.echoes where echo.live {
                guard let id = NodeID(rawValue: echo.node), id < me, !departed.contains(id),
                    let known = lastKnown[id], known.incarnation == echo.incarnation,
                    goneIncarnations[id] != echo.incarnation, now - known.lastHeard >= window
                else { continue }
                if third.lastHeard - Int(echo.ageMilliseconds) >= known.lastHeard + intervalMilliseconds { return id }
            }
        }
        return nil
    }

    /// A node that a live peer hears, live and within the early window, but this node does not (not dead, not
    /// departed): it is alive and this node is deaf to it, so this node must not take its buckets by joining.
    func unheardButAlive() -> NodeID? {
        let known = Set(peers.keys).union(departed).union([me])
        for peer in peers.values where !peer.fenced {
            for echo in peer.echoes where echo.live && Int(echo.ageMilliseconds) < earlyWindow(of: peer) {
                guard let id = NodeID(rawValue: echo.node), configured.contains(id), !known.contains(id) else {
                    continue
                }
                return id
            }
        }
        return nil
    }

    /// When the silence of each live peer reaches (or reached) the early window, if it is not heard before: this
    /// node then tells it at once, in a heartbeat, that it does not hear it, before it declares it dead.
    var earlyWindowEnds: [Int] {
        peers.values.filter { $0.state != .stopped }.map { $0.lastHeard + earlyWindow(now: latest) }
    }
}

/// Deadlines under receive loss or late heartbeats (`DeadlineTolerance`).
extension Membership {
    /// How long a silent peer may stay silent now before this node declares it dead.
    func appliedDeadline(now: Int) -> Int { tolerance.applied(now: now) }

    /// The window of this node's early checks: half an interval before it would declare a silent peer dead.
    func earlyWindow(now: Int) -> Int { appliedDeadline(now: now) - intervalMilliseconds / 2 }

    /// The window of the early checks against `peer`: half an interval before it would declare a node it does not
    /// hear dead, by the deadline its last heartbeat said it applies (the farm's, if it said none).
    func earlyWindow(of peer: Peer) -> Int { (peer.deadline > 0 ? peer.deadline : deadline) - intervalMilliseconds / 2 }
}
