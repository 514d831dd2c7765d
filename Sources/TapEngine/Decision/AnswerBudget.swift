/// A token bucket on the engine's millisecond clock: `perMillisecond` a millisecond on average, in bursts of up to
/// `burst`. Two budgets bound what a flood of legitimate-looking requests costs:
///
/// - `arp`: the ARP replies and neighbour advertisements for the VIP the engine sends. Real clients ask once in a
///   while (a neighbour entry lasts tens of seconds); beyond the budget requests are dropped and counted
///   (`answer_rate_limited`), and the clients ask again.
/// - `echo`: the ICMP echo requests (pings) to the VIP the engine delivers or forwards: monitoring pings a few times a
///   second; a ping flood would otherwise cost the servers' kernels a reply each, and the clients their capacity.
///   Beyond it they are dropped and counted (`echo_rate_limited`).
struct AnswerBudget {
    let perMillisecond: UInt32
    let burst: UInt32
    private var tokens: UInt32
    private var refilledAt: UInt32?

    init(perMillisecond: UInt32, burst: UInt32) {
        self.perMillisecond = perMillisecond
        self.burst = burst
        tokens = burst
    }

    static var arp: AnswerBudget { AnswerBudget(perMillisecond: 1, burst: 256) }
    static var echo: AnswerBudget { AnswerBudget(perMillisecond: 1, burst: 1000) }

    /// Whether one more may go at `now` (the engine's millisecond clock, which wraps); takes it if so.
    mutating func take(now: UInt32) -> Bool {
        let elapsed = refilledAt.map { now &- $0 } ?? 0
        if elapsed > 0 {
            tokens = UInt32(min(UInt64(burst), UInt64(tokens) + UInt64(elapsed) * UInt64(perMillisecond)))
        }
        refilledAt = now
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
