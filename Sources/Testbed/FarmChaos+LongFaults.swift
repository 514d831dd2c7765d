import Foundation
import Glibc

/// Faults that last: a cable cut, a server powered off, a node configured on every peer but never started. A fault of
/// minutes is the common case (a server waits for a part, a cable for a technician), so after the first failover the
/// survivors must be as steady as before it for as long as the fault lasts: no view change, nothing lost, no flow
/// silent for longer than `steadySilenceMilliseconds`. Then the node comes back and serves again.
extension FarmChaos {
    /// The longest a flow may go without a reply once the first failover is over (requests go every 10 ms).
    public static let steadySilenceMilliseconds = 100.0

    func longFault(_ scenario: ChaosScenario) throws -> ChaosOutcome {
        let victim = scenario == .neverStarted ? nil : 2
        let survivors = farm.startedNodes.filter { $0 != victim }
        var faultAt: Int64 = 0
        var window: ClosedRange<Int64> = 0...0
        var changes = 0
        var backAt: Int64 = 0
        var rejoined = true
        let probe = try probing { probe in
            faultAt = probe.now
            if let victim {
                if scenario == .poweredOff {
                    farm.signal(victim, SIGKILL)
                    farm.waitForExit(victim)
                }
                try farm.setLink(victim, up: false)
            }
            // The first failover, then the steady state that must hold for the rest of the fault.
            Thread.sleep(forTimeInterval: recoveryBudgetMilliseconds / 1000)
            let settledAt = probe.now
            let before = viewChanges(of: survivors)
            Thread.sleep(forTimeInterval: max(1, longFaultSeconds - recoveryBudgetMilliseconds / 1000))
            window = settledAt...probe.now
            changes = viewChanges(of: survivors) - before
            guard let victim else { return }
            backAt = probe.now
            try farm.setLink(victim, up: true)
            if scenario == .poweredOff { try farm.start(victim) }
            rejoined = farm.waitForView(farm.startedView, nodes: farm.startedNodes, seconds: 15)
            Thread.sleep(forTimeInterval: 1.5)
        }
        let records = probe.records
        let steady = WindowTally(records, sendTimes: probe.sendTimes, window: window)
        var outcome = ChaosOutcome(scenario: scenario, passed: true, tally: ProbeTally(records))
        outcome.figures = [
            "fault_s": Double(window.upperBound - faultAt) / 1e9, "view_changes_while_away": Double(changes),
            "lost_while_away": Double(steady.lost), "sent_while_away": Double(steady.sent),
            "longest_silence_while_away_ms": steady.longestSilenceMilliseconds,
        ]
        let away = victim.map { "while node \($0) was away" } ?? "while node 3 was never started"
        if changes != 0 { outcome.failures.append("\(changes) view changes among the survivors \(away)") }
        if steady.lost != 0 { outcome.failures.append("\(steady.lost) of \(steady.sent) requests lost \(away)") }
        if steady.longestSilenceMilliseconds > Self.steadySilenceMilliseconds {
            outcome.failures.append(
                "a flow went \(Int(steady.longestSilenceMilliseconds)) ms without an answer \(away) "
                    + "(at most \(Int(Self.steadySilenceMilliseconds)) ms): "
                    + steady.silences(over: Self.steadySilenceMilliseconds, since: faultAt))
        }
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        if let victim {
            let recovery = Self.recovery(of: records, after: faultAt)
            outcome.figures["recovery_ms"] = recovery ?? -1
            if (recovery ?? .infinity) > recoveryBudgetMilliseconds {
                outcome.failures.append(
                    "the first failover took \(recovery.map { "\(Int($0)) ms" } ?? "for ever") "
                        + "(budget \(Int(recoveryBudgetMilliseconds)) ms)")
            }
            let servedAgain = Self.answered(by: UInt16(victim), in: records, after: backAt + 1_000_000_000)
            outcome.figures["answered_by_node_after_return"] = Double(servedAgain)
            if !rejoined { outcome.failures.append("node \(victim) did not rejoin within 15 s of its return") }
            if servedAgain == 0 { outcome.failures.append("node \(victim) did not serve again after its return") }
        }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }
}
