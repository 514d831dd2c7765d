import Foundation
import Glibc

/// A node whose lbnode loses the CPU again and again for a few milliseconds (`stalls`): a hypervisor that steals it,
/// a CPU quota that throttles, a host busy with other work. Each stall delays that node's heartbeats and its hearing
/// of its peers by up to one and a half times the farm's deadline. The first ones may cost a failover; after that the
/// farm must have lengthened its deadline and hold: no view change, nothing lost, nothing answered twice.
extension FarmChaos {
    /// How long the first stalls may cost views: the farm learns how late its heartbeats come.
    public static let stallLearningSeconds = 5.0
    /// The longest stall: half the longest deadline lateness gives (100 ms), less an interval, since a peer's silence
    /// is the stall plus up to an interval, and the deadline twice the longest silence.
    static let longestStallMilliseconds = 40

    func stalls(node: Int) throws -> ChaosOutcome {
        let (interval, deadline) = farm.options.heartbeat
        let lengths = interval...max(interval, min(deadline * 3 / 2, Self.longestStallMilliseconds))
        var stalls: [Int] = []
        var learningChanges = 0
        var changes = 0
        var window: ClosedRange<Int64> = 0...0
        let probe = try probing(tcp: 10) { probe in
            let start = Date()
            var learnedAt: (time: Int64, changes: Int)?
            while Date().timeIntervalSince(start) < longFaultSeconds {
                if learnedAt == nil, Date().timeIntervalSince(start) >= Self.stallLearningSeconds {
                    learnedAt = (probe.now, viewChanges())
                }
                let length = Int.random(in: lengths)
                farm.signal(node, SIGSTOP)
                Thread.sleep(forTimeInterval: Double(length) / 1000)
                farm.signal(node, SIGCONT)
                stalls.append(length)
                Thread.sleep(forTimeInterval: Double.random(in: 0.05...0.25))
            }
            let learned = learnedAt ?? (probe.now, viewChanges())
            window = learned.time...probe.now
            learningChanges = learned.changes
            changes = viewChanges() - learned.changes
        }
        let steady = WindowTally(probe.records, sendTimes: probe.sendTimes, window: window)
        var outcome = ChaosOutcome(scenario: .stalls, passed: true, tally: ProbeTally(probe.records))
        let lengthened = farm.testbed.servers.map { farm.log($0.number).components(separatedBy: " heard again after ") }
        outcome.figures = [
            "stalls": Double(stalls.count), "longest_stall_ms": Double(stalls.max() ?? 0),
            "view_changes_while_learning": Double(learningChanges), "view_changes_after": Double(changes),
            "lost_after": Double(steady.lost), "sent_after": Double(steady.sent), "resets_after": Double(steady.resets),
            "longest_silence_after_ms": steady.longestSilenceMilliseconds,
            "deadline_lengthenings": Double(lengthened.map { $0.count - 1 }.reduce(0, +)),
        ]
        let after = "after the first \(Int(Self.stallLearningSeconds)) s of node \(node)'s stalls"
        if changes != 0 { outcome.failures.append("\(changes) view changes \(after)") }
        if steady.lost != 0 { outcome.failures.append("\(steady.lost) of \(steady.sent) requests lost \(after)") }
        if steady.resets != 0 { outcome.failures.append("\(steady.resets) connections reset \(after)") }
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }
}
