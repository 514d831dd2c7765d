import Hashing

/// The heartbeats a node sent lately, as challenges: a heartbeat answers one when it echoes this node's incarnation
/// and the sequence of a heartbeat sent within `window` ms. Only a sender that heard that heartbeat can, so no capture
/// made before it answers. The heartbeat gate (`HeartbeatGate`) and the start-time probe (`ProbeChallenge`) ask the
/// same question.
struct Challenges {
    let me: NodeID
    let incarnation: UInt64
    /// How old the heartbeat an answer echoes may be (ms).
    let window: Int
    /// Sequence and send time (ms) of the heartbeats sent within the window, oldest first.
    private var sent: [(sequence: UInt64, at: Int)] = []

    init(me: NodeID, incarnation: UInt64, window: Int) {
        self.me = me
        self.incarnation = incarnation
        self.window = window
    }

    /// This node sent its heartbeat `sequence` at `now`.
    mutating func noteSent(sequence: UInt64, at now: Int) {
        sent.append((sequence, now))
        let stale = sent.prefix { now - $0.at > window }.count
        if stale > 0 { sent.removeFirst(stale) }
    }

    /// Whether `heartbeat` answers one of this node's heartbeats sent within the window of `now`.
    func answered(by heartbeat: Heartbeat, now: Int) -> Bool {
        guard let echo = heartbeat.echo(of: me), echo.incarnation == incarnation else { return false }
        return sent.contains { $0.sequence == echo.sequence && now - $0.at <= window }
    }
}
