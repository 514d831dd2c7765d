import Foundation
import TapEngine
import Testing

@testable import Testbed
@testable import lbbench

/// What the failover and throughput reports compute from their records, and the SVG they draw.
struct ReportTests {
    /// A flow answered every 2 ms by `server` until `until`, then by `after` from `from` on.
    static func record(
        tcp: Bool = false, server: UInt16, until: Int64, after: UInt16? = nil, from: Int64 = 0, end: Int64 = 200
    ) -> FlowProbe.Record {
        var record = FlowProbe.Record(isTCP: tcp)
        var sequence: UInt32 = 0
        for ms in stride(from: Int64(0), to: end, by: 2) {
            defer { sequence += 1 }
            record.sent += 1
            if ms < until {
                record.replies.append((ms * 1_000_000, sequence, server))
            } else if let after, ms >= from {
                record.replies.append((ms * 1_000_000, sequence, after))
            }
        }
        return record
    }

    /// `lbbench apps` sets the VIP against straight traffic, in flood delivery also against straight traffic the
    /// switch floods, and a client per server through the VIP against a client per server straight; a reference not
    /// measured shows no row or ratio.
    @Test func theAppsTableComparesFloodWithFloodedStraightTraffic() {
        var report = AppsReport(seconds: 5, connections: 32, udpBitsPerSecond: 200_000_000, victim: 3)
        let cpu = AppsReport.CPUUse(machineCores: 1.8, lbnodeCores: 0.2)
        let rates: [(String, AppsReport.Path, Double)] = [
            ("flood", .vip, 50_000), ("flood", .direct, 80_000), ("flood", .directFlooded, 62_500),
            ("directed", .vip, 72_000), ("directed", .direct, 80_000),
            ("directed", .vipClientPerServer, 76_000), ("directed", .directClientPerServer, 80_000),
        ]
        for (delivery, path, rate) in rates {
            let result = Wrk.Result(requests: Int(rate) * 5, requestsPerSecond: rate, p99Milliseconds: 1, errors: 0)
            report.web.append(.init(delivery: delivery, path: path, repetition: 1, result: result, cpu: cpu))
        }
        let rows = report.table.split(separator: "\n").filter { $0.contains("wrk against nginx") }
        let flood = rows.first { $0.hasPrefix("flood") }.map(String.init) ?? ""
        let directed = rows.first { $0.hasPrefix("directed") }.map(String.init) ?? ""
        #expect(
            flood.contains("0.62x") && flood.contains("0.80x"), "50k against 80k straight and 62.5k flooded: \(flood)")
        #expect(directed.contains("0.90x") && directed.contains(" - "), "no flooded reference in directed: \(directed)")
        let perServer = report.table.split(separator: "\n").filter { $0.contains("a client per server") }
        #expect(perServer.count == 1 && perServer[0].hasPrefix("directed") && perServer[0].contains("0.95x"))
    }

    @Test func aFailoverTrialReadsRecoveryGapsLossAndResets() {
        var resetOther = Self.record(tcp: true, server: 3, until: 200)
        resetOther.resetAt = 150_000_000
        var resetVictim = Self.record(tcp: true, server: 2, until: 100)
        resetVictim.resetAt = 140_000_000
        var duplicated = Self.record(server: 1, until: 200)
        duplicated.replies.append((199_000_000, 5, 3))
        var resetEarly = Self.record(tcp: true, server: 3, until: 0)  // reset before its first answer
        resetEarly.resetAt = 1_000_000
        let records = [
            Self.record(server: 2, until: 100, after: 1, from: 140),  // the victim's: 40 ms without answer
            Self.record(server: 2, until: 100, after: 3, from: 130),
            duplicated, resetOther, resetVictim, resetEarly,
        ]
        let trial = FailoverTrial(mode: .kill, records: records, victim: 2, failedAt: 100_000_000)
        #expect(trial.affectedFlows == 3)
        #expect(trial.recoveryMilliseconds == 40)
        #expect(trial.longestInterruptionMilliseconds == 42)  // from the last reply at 98 ms to 140 ms
        #expect(trial.unaffectedLongestGapMilliseconds == 2)
        #expect(trial.duplicates == 1)
        let example = trial.duplicateExamples?.first
        #expect(trial.duplicateExamples?.count == 1)
        #expect(example?.flow == 2 && example?.servers == [1, 3] && example?.millisecondsAfterFailure == 99)
        // 100-138, 100-128, the victim's TCP flow after 100, and the early reset flow's 100 (none was answered)
        #expect(trial.requestsLost == 20 + 15 + 50 + 100)
        #expect(trial.tcpResetAffected == 1 && trial.tcpResetUnaffected == 1 && trial.tcpResetBeforeFailure == 1)

        let never = FailoverTrial(
            mode: .link, records: [Self.record(server: 2, until: 100)], victim: 2, failedAt: 100_000_000)
        #expect(never.recoveryMilliseconds == nil)
        let report = FailoverReport(
            delivery: "directed", victim: 2, udpFlows: 1, tcpFlows: 0, intervalMilliseconds: 2,
            trials: [trial, never])
        #expect(report.summaries.map(\.mode) == [.kill, .link])
        #expect(report.summaries[1].unrecovered == 1)
        #expect(report.table.contains("trial 1: UDP flow 2 request 5, servers 1 then 3, +99.0 ms after the failure"))
        #expect(FailoverReport.percentile([5, 1, 3, 2, 4], 50) == 3)
        #expect(FailoverReport.percentile((1...10).map(Double.init), 99) == 10)
    }

    @Test func aThroughputTrialPassesOnlyUnderTheLossLimit() {
        func trial(sent: Int, delivered: Int) -> EngineReport.Trial {
            EngineReport.Trial(
                path: .engine, offeredRate: 0, sent: sent, seconds: 1, deliveredPerServer: [delivered],
                cpuBusySeconds: 0, engineReceived: [], engineAccepted: [], engineRingDrops: [], engineDrops: [])
        }
        #expect(ThroughputBenchmark.acceptable(trial(sent: 1_000_000, delivered: 1_000_000)))
        #expect(ThroughputBenchmark.acceptable(trial(sent: 1_000_000, delivered: 999_991)))
        #expect(!ThroughputBenchmark.acceptable(trial(sent: 1_000_000, delivered: 999_990)))
        #expect(!ThroughputBenchmark.acceptable(trial(sent: 0, delivered: 0)))
    }

    @Test func chartsAreSVGWithEveryPointAndBar() {
        let lines = SVGChart(
            title: "a < b", xLabel: "offered", yLabel: "delivered", kind: .lines,
            series: [.init(name: "engine", points: [(0, 0), (100, 90), (200, 150)])])
        #expect(lines.svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(lines.svg.hasSuffix("</svg>\n"))
        #expect(lines.svg.components(separatedBy: "<circle").count == 4)
        #expect(lines.svg.contains("a &lt; b"))
        let bars = SVGChart(
            title: "t", xLabel: "x", yLabel: "y", kind: .bars(categories: ["1", "2"]),
            series: [.init(name: "kill", points: [(0, 30), (1, 40)]), .init(name: "link", points: [(0, 35)])])
        #expect(bars.svg.components(separatedBy: "<rect x=").count - 1 == 3 + 2)  // bars and legend swatches
        #expect(SVGChart.niceCeiling(42) == 50 && SVGChart.niceCeiling(0.3) == 0.5 && SVGChart.niceCeiling(100) == 100)
    }
}
