import Foundation

extension FarmChaos {
    /// Node `node` restarted `times` times as `systemctl restart` does (SIGTERM, then started again once it exited),
    /// each time back in the view before the next, under 60 UDP flows and 40 TCP connections. Held when no connection
    /// was reset, no request answered twice, the datagrams of the restarting node's flows were answered by the others
    /// within the recovery budget (datagrams follow the table at once), and the node served again at the end.
    func restarts(node: Int, times: Int) throws -> ChaosOutcome {
        var rejoined = 0
        var lastStart: Int64 = 0
        let probe = try probing(tcp: 40) { probe in
            for _ in 0..<times {
                farm.signal(node, SIGTERM)
                farm.waitForExit(node)
                try farm.start(node)
                lastStart = probe.now
                let everyone = farm.testbed.servers.map(\.number)
                if farm.waitForView(VirtualFarm.view(everyone), nodes: everyone, seconds: 5) { rejoined += 1 }
                Thread.sleep(forTimeInterval: 0.5)
            }
            Thread.sleep(forTimeInterval: 2)
        }
        let records = probe.records
        var outcome = ChaosOutcome(scenario: .restarts, passed: true, tally: ProbeTally(records))
        let datagrams = ProbeTally(records.filter { !$0.isTCP })
        let servedAgain = Self.answered(by: UInt16(node), in: records, after: lastStart + 1_000_000_000)
        outcome.figures = [
            "restarts": Double(times), "rejoined": Double(rejoined), "tcp_resets": Double(outcome.tally.resets),
            "udp_longest_gap_ms": datagrams.longestGapMilliseconds, "answered_by_node_after_last": Double(servedAgain),
        ]
        if outcome.tally.resets > 0 { outcome.failures.append("\(outcome.tally.resets) TCP connections were reset") }
        if rejoined < times { outcome.failures.append("node \(node) rejoined \(rejoined) of \(times) times") }
        if datagrams.longestGapMilliseconds > recoveryBudgetMilliseconds {
            outcome.failures.append("a UDP flow went \(Int(datagrams.longestGapMilliseconds)) ms without an answer")
        }
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        if servedAgain == 0 { outcome.failures.append("node \(node) did not serve again after its last start") }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }
}
