import Hashing

/// Which peers get this node's heartbeat now. A peer heard within `awayAfterMilliseconds` (or, after this node's
/// start, not silent that long yet) gets every heartbeat. A peer silent longer is *away* (its server off, its cable
/// cut, configured but never started) and gets one every `awayIntervalMilliseconds`: enough for it to hear this node
/// within a second of coming back (and it heartbeats at full rate as soon as it starts, so it is heard at once), while
/// this node stops feeding a neighbour entry that never resolves a datagram per interval, each one held in the kernel's
/// queue until ARP gives up, and ARP requests for it to the whole segment. Away peers are counted, not retried at the
/// farm's expense.
struct HeartbeatPacing {
    /// Silence after which a peer is away: well past the failover time, so a peer that dies is still sent to at full
    /// rate while the others take over, and a short outage (a frozen VM, a switch reboot) costs no pace.
    static let awayAfterMilliseconds = 1000
    static let awayIntervalMilliseconds = 1000

    /// When each away peer was last sent a heartbeat.
    private var lastSentAway: [NodeID: Int] = [:]
    /// Until when every peer gets every heartbeat (`resume`).
    private var fullRateUntil = Int.min

    /// This node is back on the network (its link up again, or its fence lifted): for `awayAfterMilliseconds` every
    /// peer gets every heartbeat, so that the peers it could not reach hear it at once and answer at full rate too.
    /// Paced, a peer that did not hear this node for a second would wait up to another second for the next one, and
    /// meanwhile the two would build views without each other.
    mutating func resume(now: Int) {
        fullRateUntil = now + Self.awayAfterMilliseconds
        lastSentAway = [:]
    }

    /// The peers of `peers` to send the heartbeat due at `now` to; `silence` gives how long a peer has been silent.
    mutating func recipients(of peers: [NodeID], now: Int, silence: (NodeID) -> Int) -> [NodeID] {
        if now < fullRateUntil { return peers }
        return peers.filter { peer in
            guard silence(peer) > Self.awayAfterMilliseconds else {
                lastSentAway[peer] = nil
                return true
            }
            if let last = lastSentAway[peer], now - last < Self.awayIntervalMilliseconds { return false }
            lastSentAway[peer] = now
            return true
        }
    }

    /// Whether `peer` is away (sent to once a second).
    func isAway(_ peer: NodeID) -> Bool { lastSentAway[peer] != nil }
}
