import Foundation
import TapEngine

extension FarmChaos {
    /// Node `node` restarted `times` times as `systemctl restart` does (SIGTERM, then started again once it exited),
    /// each time back in the view before the next, under 60 UDP flows and 40 TCP connections. Held when no connection
    /// was reset, no request answered twice, the datagrams of the restarting node's flows were answered by the others
    /// within the recovery budget (datagrams follow the table at once), and the node served again at the end.
    func restarts(node: Int, times: Int) throws -> ChaosOutcome {
        var rejoined = 0
        var lastStart: Int64 = 0
        var starts: [Int64] = []
        let probe = try probing(tcp: 40) { probe in
            for _ in 0..<times {
                let stopped = probe.now
                try farm.restart(node)
                lastStart = probe.now
                starts.append(stopped)
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
        if outcome.tally.resets > 0 {
            outcome.failures.append("\(outcome.tally.resets) TCP connections were reset")
            outcome.failures += Self.resets(in: records, restarts: starts)
        }
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

extension FarmChaos {
    /// Each reset connection: when, why, and who answered it last, against the restarts' times (for the logs).
    static func resets(in records: [FlowProbe.Record], restarts: [Int64]) -> [String] {
        records.enumerated().compactMap { flow, record in
            guard let at = record.resetAt else { return nil }
            let restart = restarts.lastIndex { $0 <= at }
            let since = restart.map { "\((at - restarts[$0]) / 1_000_000) ms after restart \($0 + 1)'s SIGTERM" }
            return "flow \(flow) (last answered by node \(record.replies.last?.server ?? 0)) ended at "
                + "\(at / 1_000_000) ms, \(since ?? "before the first restart"): \(record.resetReason ?? "?")"
        }
    }
}

extension FarmChaos {
    /// The p99 latency under wrk through restarts: below Linux's least retransmission timeout (200 ms).
    public static let restartP99Milliseconds = 200.0

    /// wrk through the VIP (32 keep-alive connections to nginx on every server) while node `node` is restarted `times`
    /// times as `systemctl restart` does, each time back in the view before the next. Held when wrk saw no socket
    /// error and no failed answer, its p99 stayed under `restartP99Milliseconds`, and every restart happened while it
    /// ran.
    func restartsUnderWrk(node: Int, times: Int) throws -> ChaosOutcome {
        let seconds = 3 * times + 3
        let everyone = farm.testbed.servers.map(\.number)
        // In flood delivery (or auto, which picks it on a learning switch), a restart in a farm that has run for a
        // while, as most are: the joins' handover window over. Within it, a flood farm lets a stopped node's
        // connections in the buckets that moved wait for its return (`EngineStateBuilder.previousOwners`); a director
        // sends them on within the window too, so a directed or relay farm is restarted at once.
        let director = [DeliverySetting.fixed(.directed), .fixed(.relay)].contains(farm.options.delivery)
        guard director || farm.waitForHandoversToEnd(nodes: everyone) else {
            var outcome = ChaosOutcome(scenario: .restartsUnderWrk, passed: false, tally: ProbeTally([]))
            outcome.failures.append(
                "the joins' handover window (\(farm.options.handoverSeconds ?? 30) s) did not end 10 s after it should")
            return outcome
        }
        let box = UncheckedBox(farm)  // the calling thread only runs wrk meanwhile
        let restarts = RestartTally()
        let done = DispatchSemaphore(value: 0)
        let started = Date()
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) {
            defer { done.signal() }
            for _ in 0..<times {
                guard (try? box.value.restart(node)) != nil else { return }
                if box.value.waitForView(VirtualFarm.view(everyone), nodes: everyone, seconds: 5) {
                    restarts.rejoined += 1
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
            restarts.finishedAfter = Date().timeIntervalSince(started)
        }
        let result = try Wrk.run(
            in: farm.testbed.clients[0].namespace, url: "http://\(farm.vip)/", seconds: seconds, connections: 32)
        done.wait()
        var outcome = ChaosOutcome(scenario: .restartsUnderWrk, passed: true, tally: ProbeTally([]))
        outcome.figures = [
            "restarts": Double(times), "rejoined": Double(restarts.rejoined), "wrk_requests": Double(result.requests),
            "wrk_requests_per_second": result.requestsPerSecond, "wrk_errors": Double(result.errors),
            "wrk_p99_ms": result.p99Milliseconds,
        ]
        if result.errors != 0 { outcome.failures.append("wrk saw \(result.errors) socket errors or failed answers") }
        // The least TCP retransmission timeout is 200 ms: a p99 above it is requests that waited for one.
        if result.p99Milliseconds >= Self.restartP99Milliseconds {
            outcome.failures.append(
                "wrk's p99 was \(result.p99Milliseconds) ms (under \(Int(Self.restartP99Milliseconds)) ms: no "
                    + "request waits for a retransmission)")
        }
        if restarts.rejoined < times {
            outcome.failures.append("node \(node) rejoined \(restarts.rejoined) of \(times) times")
        }
        if let finished = restarts.finishedAfter, finished > Double(seconds) {
            outcome.failures.append("the restarts took \(Int(finished)) s, longer than wrk's \(seconds) s")
        }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }
}

/// What the restarting thread counted (read once it signalled).
private final class RestartTally: @unchecked Sendable {
    var rejoined = 0
    var finishedAfter: Double?
}
