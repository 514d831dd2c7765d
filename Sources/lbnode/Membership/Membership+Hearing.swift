import Hashing

/// One view from asymmetric hearing (docs/architecture.md): every heartbeat echoes what its sender hears, and the node
/// that a live peer does not hear stands down.
extension Membership {
    /// Whether `peer` hears this node: its last heartbeat echoes this incarnation as a live member, heard within the
    /// early window. A peer heard for less than the early window has not had the time yet.
    func hears(_ peer: Peer, now: Int) -> Bool {
        if now - peer.since < earlyWindow { return true }
        guard let echo = peer.echoes.first(where: { $0.node == me.rawValue }) else { return false }
        return echo.live && echo.incarnation == incarnation && Int(echo.ageMilliseconds) < earlyWindow
    }

    /// When `peer` last heard this node, as far as this node knows: its last heartbeat's echo of this incarnation,
    /// dated back by the echo's age (when it was received, without one). The peer may have heard a later heartbeat
    /// since, so it declares this node dead no earlier than this plus the deadline; when this node last heard the peer
    /// can be up to an interval later, too late to count the early checks from.
    func heardMe(_ peer: Peer) -> Int {
        guard let echo = peer.echoes.first(where: { $0.node == me.rawValue && $0.live && $0.incarnation == incarnation })
        else { return peer.lastHeard }
        return peer.lastHeard - Int(echo.ageMilliseconds)
    }

    /// Whether `peer` would serve without this node: it is not fenced, active or joining, and has quorum among the
    /// nodes it hears (by its echoes; with `quorum: none`, always).
    func servesWithout(_ id: NodeID, _ peer: Peer) -> Bool {
        guard !peer.fenced, peer.state == .active || peer.state == .joining else { return false }
        guard quorum == .majority else { return true }
        let heard = peer.echoes.filter { $0.live && Int($0.ageMilliseconds) < earlyWindow && $0.node != me.rawValue }
        return isMajority(Set(heard.compactMap { NodeID(rawValue: $0.node) }).intersection(configured).union([id]))
    }

    /// The live peer that does not hear this node and would serve without it, or nil. Its view gives this node's
    /// buckets away, so this node must not serve beside it: the node that is not heard stands down (`unheard`), and
    /// the farm converges on the view of the nodes that hear each other. The peer's heartbeats say so half an
    /// interval before it declares this node dead (`NodeController` sends one as a peer's silence reaches the early
    /// window), so this node stops first.
    func unheardBy(now: Int) -> NodeID? {
        peers.sorted { $0.key < $1.key }.first { id, peer in !hears(peer, now: now) && servesWithout(id, peer) }?.key
    }

    /// A node that a live peer hears, live and within the early window, but this node does not (not dead, not
    /// departed): it is alive and this node is deaf to it, so this node must not take its buckets by joining.
    func unheardButAlive() -> NodeID? {
        let known = Set(peers.keys).union(departed).union([me])
        for peer in peers.values where !peer.fenced {
            for echo in peer.echoes where echo.live && Int(echo.ageMilliseconds) < earlyWindow {
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
        peers.values.filter { $0.state != .stopped }.map { $0.lastHeard + earlyWindow }
    }
}
