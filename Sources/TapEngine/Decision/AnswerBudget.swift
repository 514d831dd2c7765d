/// How many ARP replies and neighbour advertisements for the VIP the engine may send: `perMillisecond` a millisecond on
/// average, in bursts of up to `burst`. Real clients ask once in a while (a neighbour entry lasts tens of seconds);
/// a flood of requests would otherwise cost the engine, and the segment, one reply each. Requests beyond the budget
/// are dropped and counted (`answer_rate_limited`); the clients ask again.
struct AnswerBudget {
    static let perMillisecond: UInt32 = 1
    static let burst: UInt32 = 256
    private var tokens = Self.burst
    private var refilledAt: UInt32?

    /// Whether an answer may go out at `now` (the engine's millisecond clock, which wraps); takes it if so.
    mutating func take(now: UInt32) -> Bool {
        let elapsed = refilledAt.map { now &- $0 } ?? 0
        if elapsed > 0 {
            tokens = UInt32(min(UInt64(Self.burst), UInt64(tokens) + UInt64(elapsed) * UInt64(Self.perMillisecond)))
        }
        refilledAt = now
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
