import Foundation

/// The figures of `lbbench pps`.
struct ThroughputReport: Codable {
    struct Search: Codable {
        var path: EngineBenchmark.Path
        var frameBytes: Int
        var repetition: Int
        /// Delivered per second at the highest offered rate with loss under the limit (0: none found).
        var zeroLossRate: Double
        var overloadOffered: Double
        var overloadDelivered: Double
        /// Machine CPU (generator, switch, servers) per delivered packet at the zero-loss rate.
        var cpuMicrosecondsPerDelivered: Double?
        /// The same less the baseline's (nothing accepting the frames) at that rate: what the path itself costs.
        var extraCPUMicrosecondsPerDelivered: Double?
        var trials: Int
        /// Every trial of the search: offered and delivered packets per second.
        var points: [[Double]]
    }

    /// min, median, max.
    struct Spread: Codable {
        var min: Double
        var median: Double
        var max: Double

        init(_ values: [Double]) {
            let sorted = values.sorted()
            min = sorted.first ?? 0
            max = sorted.last ?? 0
            median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }

        var text: String { String(format: "%.0f / %.0f / %.0f", min, median, max) }
    }

    var servers: Int
    var seconds: Double
    var flows: Int
    var lossLimitPercent: Double
    var searches: [Search]

    func spread(_ path: EngineBenchmark.Path, _ frameBytes: Int, _ value: (Search) -> Double?) -> Spread {
        Spread(searches.filter { $0.path == path && $0.frameBytes == frameBytes }.compactMap(value))
    }

    /// Delivered against offered packets per second, every trial of every search, per path and frame size.
    var charts: [String: SVGChart] {
        var charts: [String: SVGChart] = [:]
        for frameBytes in Set(searches.map(\.frameBytes)).sorted() {
            let top = searches.filter { $0.frameBytes == frameBytes }.flatMap(\.points).map { $0[0] }.max() ?? 0
            let lossless = SVGChart.Series(name: "no loss", points: [(0, 0), (top, top)])
            let series =
                [lossless]
                + ThroughputBenchmark.paths.map { path in
                    SVGChart.Series(
                        name: path.rawValue,
                        points: searches.filter { $0.path == path && $0.frameBytes == frameBytes }.flatMap(\.points)
                            .map { (x: $0[0], y: $0[1]) })
                }
            charts["throughput-\(frameBytes)"] = SVGChart(
                title: "Delivered against offered load, \(frameBytes)-byte frames, \(servers) servers",
                xLabel: "offered packets per second", yLabel: "delivered packets per second", kind: .lines,
                series: series)
        }
        return charts
    }

    var table: String {
        var table = TextTable(
            title: "Throughput, RFC 2544 style: \(servers) servers, \(flows) client flows, \(seconds) s trials, loss "
                + "limit \(lossLimitPercent) %; min / median / max over \(Set(searches.map(\.repetition)).count) runs",
            header: [
                "frame", "path", "zero-loss pps", "overload delivered pps", "CPU µs/pkt", "extra CPU µs/pkt",
                "ratio vs nftables",
            ])
        for frameBytes in Set(searches.map(\.frameBytes)).sorted() {
            let reference = spread(.nftables, frameBytes, \.zeroLossRate).median
            for path in ThroughputBenchmark.paths {
                let zeroLoss = spread(path, frameBytes, \.zeroLossRate)
                let cpu = spread(path, frameBytes, \.cpuMicrosecondsPerDelivered)
                let extra = spread(path, frameBytes, \.extraCPUMicrosecondsPerDelivered)
                table.add([
                    "\(frameBytes) B", path.rawValue, zeroLoss.text, spread(path, frameBytes, \.overloadDelivered).text,
                    String(format: "%.2f", cpu.median), String(format: "%.2f", extra.median),
                    reference > 0 ? String(format: "%.2fx", zeroLoss.median / reference) : "-",
                ])
            }
        }
        return table.rendered
    }
}
