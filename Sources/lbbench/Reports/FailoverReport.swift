import Foundation

/// The figures of `lbbench failover`: every trial, and per failure mode the spread over trials.
struct FailoverReport: Codable {
    struct Summary: Codable {
        var system: FailoverSystem
        var mode: FailureMode
        var trials: Int
        var recoveryP50: Double
        var recoveryP99: Double
        var recoveryMax: Double
        var interruptionP50: Double
        var interruptionP99: Double
        var interruptionMax: Double
        /// Trials in which some affected flow was never answered again.
        var unrecovered: Int
        var lost: Int
        var duplicates: Int
        var tcpResetAffected: Int
        var tcpResetUnaffected: Int
        var tcpResetBeforeFailure: Int
    }

    var delivery: String
    var victim: Int
    var udpFlows: Int
    var tcpFlows: Int
    var intervalMilliseconds: Double
    var trials: [FailoverTrial]

    var summaries: [Summary] {
        FailoverSystem.allCases.flatMap { system in FailureMode.allCases.map { (system, $0) } }.compactMap {
            system, mode in
            let of = trials.filter { $0.system == system && $0.mode == mode }
            guard !of.isEmpty else { return nil }
            let interruptions = of.map(\.longestInterruptionMilliseconds)
            let recoveries = of.compactMap(\.recoveryMilliseconds)
            return Summary(
                system: system, mode: mode, trials: of.count, recoveryP50: Self.percentile(recoveries, 50),
                recoveryP99: Self.percentile(recoveries, 99), recoveryMax: recoveries.max() ?? 0,
                interruptionP50: Self.percentile(interruptions, 50),
                interruptionP99: Self.percentile(interruptions, 99), interruptionMax: interruptions.max() ?? 0,
                unrecovered: of.filter { $0.recoveryMilliseconds == nil }.count,
                lost: of.map(\.requestsLost).reduce(0, +),
                duplicates: of.map(\.duplicates).reduce(0, +),
                tcpResetAffected: of.map(\.tcpResetAffected).reduce(0, +),
                tcpResetUnaffected: of.map(\.tcpResetUnaffected).reduce(0, +),
                tcpResetBeforeFailure: of.map(\.tcpResetBeforeFailure).reduce(0, +))
        }
    }

    /// Per system, the recovery of every trial, one bar per failure mode.
    var charts: [String: SVGChart] {
        var charts: [String: SVGChart] = [:]
        for system in FailoverSystem.allCases {
            let of = trials.filter { $0.system == system }
            guard !of.isEmpty else { continue }
            let count = FailureMode.allCases.map { mode in of.filter { $0.mode == mode }.count }.max() ?? 0
            let series = FailureMode.allCases.compactMap { mode -> SVGChart.Series? in
                let modeTrials = of.filter { $0.mode == mode }
                guard !modeTrials.isEmpty else { return nil }
                return SVGChart.Series(
                    name: mode.rawValue,
                    points: modeTrials.enumerated().map {
                        (x: Double($0.offset), y: $0.element.recoveryMilliseconds ?? 0)
                    })
            }
            charts["recovery-\(system.rawValue)"] = SVGChart(
                title: "\(system.rawValue): recovery per trial (failure until the victim's flows are answered again)",
                xLabel: "trial", yLabel: "milliseconds", kind: .bars(categories: (1...max(count, 1)).map(String.init)),
                series: series)
        }
        return charts
    }

    /// Nearest-rank percentile: with 10 trials the p99 is the largest.
    static func percentile(_ values: [Double], _ percent: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((percent / 100 * Double(sorted.count)).rounded(.up))
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }

    var table: String {
        let f = { (value: Double) in String(format: "%.1f", value) }
        var table = TextTable(
            title:
                "Failover of server \(victim) of 3 (\(delivery) delivery; keepalived: the master of a pair), \(udpFlows) UDP + \(tcpFlows) TCP flows, "
                + "a request per flow every \(f(intervalMilliseconds)) ms\n"
                + "recovery: failure until every flow of the victim is answered by a survivor; "
                + "gap: longest time a flow of the victim went unanswered; TCP resets after the failure, of the "
                + "victim's connections and the others', and before it (while the farm settled)",
            header: [
                "system", "mode", "trials", "recovery p50", "p99", "max ms", "gap p50", "p99", "max ms", "unrecovered",
                "lost",
                "dups", "TCP resets victim", "others", "before failure",
            ])
        for summary in summaries {
            table.add([
                summary.system.rawValue, summary.mode.rawValue, "\(summary.trials)", f(summary.recoveryP50),
                f(summary.recoveryP99),
                f(summary.recoveryMax), f(summary.interruptionP50), f(summary.interruptionP99),
                f(summary.interruptionMax), "\(summary.unrecovered)", "\(summary.lost)", "\(summary.duplicates)",
                "\(summary.tcpResetAffected)", "\(summary.tcpResetUnaffected)", "\(summary.tcpResetBeforeFailure)",
            ])
        }
        return table.rendered + awayTable + duplicateLines
    }

    /// Where the duplicates were: which servers answered one request twice, and when, to find in the nodes' logs.
    private var duplicateLines: String {
        let examples = trials.enumerated().flatMap { (index, trial) in
            (trial.duplicateExamples ?? []).map { (trial: index + 1, system: trial.system, example: $0) }
        }
        guard !examples.isEmpty else { return "" }
        return "\nRequests answered twice (the first \(DuplicateAnswer.kept) of each trial):\n"
            + examples.map { item in
                let example = item.example
                return
                    "  \(item.system.rawValue) trial \(item.trial): \(example.isTCP ? "TCP" : "UDP") flow \(example.flow) "
                    + "request \(example.sequence), servers \(example.servers.map(String.init).joined(separator: " then ")), "
                    + String(format: "%+.1f ms after the failure", example.millisecondsAfterFailure)
            }.joined(separator: "\n") + "\n"
    }

    /// The long cuts: what the flows saw while the victim was away, after the first failover.
    private var awayTable: String {
        let long = trials.filter { $0.whileAway != nil }
        guard !long.isEmpty else { return "" }
        var table = TextTable(
            title: "\nWhile the victim was away (long-cut, from a second after the cut until the cable came back)",
            header: ["system", "trial", "seconds", "view changes", "requests", "lost", "dups", "longest silence ms"])
        for (index, trial) in long.enumerated() {
            let away = trial.whileAway!
            table.add([
                trial.system.rawValue, "\(index + 1)", String(format: "%.0f", away.seconds),
                trial.viewChangesWhileAway.map(String.init) ?? "-",
                "\(away.sent)", "\(away.lost)", "\(away.duplicates)",
                String(format: "%.1f", away.longestSilenceMilliseconds),
            ])
        }
        return table.rendered
    }
}
