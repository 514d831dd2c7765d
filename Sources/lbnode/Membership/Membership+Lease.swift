/// The engine's lease: how long this node may serve on what it knows now (docs/architecture.md, *Fencing*).
extension Membership {
    /// When the early checks stand this node down if it hears nothing more from now on (no heartbeat, no witness
    /// answer), in ms; nil while nothing it could miss would (it serves nothing already, or it needs nobody's word).
    /// The loop fences then when it runs on time. Handed to the engine as its lease, the moment also stops a node
    /// whose loop runs late (a starved thread, a lock held elsewhere): cut off, it must stop before its peers may take
    /// its buckets, whenever its loop turns next. The deaf-pair rule is left out: it stands a node down for what a
    /// third node says, never for time passing.
    var servingEnds: Int? {
        guard earlyFenceReason(now: latest, turnDone: false) == nil else { return latest }
        guard fence == nil, state != .joining else { return nil }
        // The early checks change only as a peer's silence, its echo's age or the witness's answer passes a bound.
        var moments: [Int] = []
        for peer in peers.values where peer.state != .stopped {
            moments += [
                peer.lastHeard + earlyWindow(now: latest) + 1, heardMe(peer) + earlyWindow(of: peer) + 1,
                peer.lastHeard + appliedDeadline(now: latest) + 1, peer.since + earlyWindow(of: peer),
            ]
        }
        if let answered = witnessAnsweredAt { moments.append(answered + witnessTimeoutMilliseconds + 1) }
        // With nothing heard the checks only tighten as time passes: the first moment that fails, by bisection.
        let sorted = Set(moments.filter { $0 > latest }).sorted()
        var (low, high) = (0, sorted.count)
        while low < high {
            let middle = (low + high) / 2
            if earlyFenceReason(now: sorted[middle], turnDone: false) != nil { high = middle } else { low = middle + 1 }
        }
        return low < sorted.count ? sorted[low] : nil
    }
}
