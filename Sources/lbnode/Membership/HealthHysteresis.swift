/// Turns a checker's raw results into a stable healthy/unhealthy state: `fails` failures in a row take the node out,
/// `rises` successes in a row bring it back, so one lost probe does not flap the farm.
struct HealthHysteresis: Equatable {
    let fails: Int
    let rises: Int
    private(set) var healthy = true
    private var streak = 0

    /// - Parameter healthy: the state before any result (false: unknown, which counts as failing).
    init(fails: Int, rises: Int, healthy: Bool = true) {
        self.fails = fails
        self.rises = rises
        self.healthy = healthy
    }

    /// Records one result; returns the new state when it changed.
    mutating func record(success: Bool) -> Bool? {
        if success == healthy {
            streak = 0
            return nil
        }
        streak += 1
        guard streak >= (healthy ? fails : rises) else { return nil }
        healthy.toggle()
        streak = 0
        return healthy
    }
}
