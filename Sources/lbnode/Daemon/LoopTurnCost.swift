import Glibc

/// What the heartbeat loop's own work costs it, turn by turn: the turns that changed the engine's state (a view change:
/// the state built in the controller's step, then installed by the engine's swap) and the longest turn. While a turn
/// runs, no heartbeat leaves: a turn longer than the failover time makes the peers declare this node dead by itself,
/// and the view change that follows costs every node such a turn again. The figures go to `lbnode status` and
/// `/metrics`, and a turn over half the failover time is logged with where its time went, including the part the
/// thread was not on a CPU (the host did not run it, or it waited for a lock or the disk).
struct LoopTurnCost {
    /// The figures `lbnode status` shows.
    struct Figures: Codable, Sendable, Equatable {
        /// Turns that swapped the engine's state, and what the last and the longest of them took (step and swaps).
        var stateChanges: UInt64 = 0
        var lastStateChangeMilliseconds: Double = 0
        var longestStateChangeMilliseconds: Double = 0
        /// The longest turn of any kind, from its start to its wait for heartbeats.
        var longestTurnMilliseconds: Double = 0
    }

    /// One turn's time, measured by `NodeLoop`.
    struct Turn {
        /// From the turn's start to its wait, on the wall clock and on the thread's CPU clock.
        var wall: Duration
        var onCPU: Duration
        /// The controller's step (where a new state is built) and the engine's swaps, and how many swaps.
        var step: Duration
        var swap: Duration
        var swaps: Int
    }

    private(set) var figures = Figures()
    /// Milliseconds (loop time) of the last warning, and the long turns not said since.
    private var lastWarning: Int?
    private var unsaid = 0
    static let warningInterval = 10_000

    /// Notes a turn that ended at `now` (ms); returns the warning to log when it took over half of
    /// `failoverMilliseconds`, at most one every 10 s (with how many long turns went unsaid meanwhile).
    mutating func note(_ turn: Turn, now: Int, failoverMilliseconds: Int) -> String? {
        let wall = Self.milliseconds(turn.wall)
        figures.longestTurnMilliseconds = max(figures.longestTurnMilliseconds, wall)
        if turn.swaps > 0 {
            let change = Self.milliseconds(turn.step + turn.swap)
            figures.stateChanges += 1
            figures.lastStateChangeMilliseconds = change
            figures.longestStateChangeMilliseconds = max(figures.longestStateChangeMilliseconds, change)
        }
        guard wall * 2 > Double(failoverMilliseconds) else { return nil }
        if let last = lastWarning, now - last < Self.warningInterval {
            unsaid += 1
            return nil
        }
        lastWarning = now
        defer { unsaid = 0 }
        let swaps =
            turn.swaps == 0
            ? "" : ", \(turn.swaps == 1 ? "an engine swap" : "\(turn.swaps) engine swaps") \(Self.text(turn.swap))"
        let offCPU = max(.zero, turn.wall - turn.onCPU)
        // What to do about it: a state change that costs this much comes back at every view change; a thread the host
        // did not run is the host's; anything else is work on the loop's thread where none should take that long.
        let advice =
            if turn.swaps > 0 && (turn.step + turn.swap) * 2 >= turn.wall {
                "a view change costs this node that much: fewer buckets or longer heartbeats (docs/configuration.md)"
            } else if offCPU * 2 >= turn.wall {
                "the host kept the thread from running: look at its CPU load and steal time"
            } else {
                "the loop's own work outside a view change, or the kernel's on its behalf (page faults, memory "
                    + "reclaim): if it recurs, report this line with the log around it"
            }
        return "a turn of the heartbeat loop took \(Self.text(turn.wall)), over half the \(failoverMilliseconds)-ms "
            + "failover time, and no heartbeat left meanwhile: the controller's step \(Self.text(turn.step))\(swaps); "
            + "off the CPU \(Self.text(offCPU)) (the host did not run the thread, or it waited for a lock or the disk); "
            + advice + (unsaid > 0 ? "; \(unsaid) more such turns since the last of these lines" : "")
    }

    /// The calling thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`).
    static func threadCPUTime() -> Duration {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return .seconds(spec.tv_sec) + .nanoseconds(spec.tv_nsec)
    }

    private static func milliseconds(_ duration: Duration) -> Double {
        Double(duration / .microseconds(1)) / 1000
    }

    /// "12.3 ms".
    private static func text(_ duration: Duration) -> String {
        let tenths = Int((milliseconds(duration) * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) ms"
    }
}
