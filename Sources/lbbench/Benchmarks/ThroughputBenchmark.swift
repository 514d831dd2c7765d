import Foundation

/// `lbbench pps`, RFC 2544 style: per frame size and path (vipfarm's engine, nftables jhash), a binary search for the
/// highest offered rate with loss under 0.001 %, and the delivered rate at overload (the generator's full speed),
/// repeated; each trial on a fresh testbed from `EngineBenchmark`.
struct ThroughputBenchmark {
    var frameSizes: [Int]
    var servers: Int
    var seconds: Double
    var repetitions: Int
    /// Binary-search steps after the overload trial: the zero-loss rate is found to 1/2^steps of the full speed.
    var steps: Int
    var flows = 4096
    var progress: (String) -> Void

    static let paths: [EngineBenchmark.Path] = [.kernelDelivery, .engine, .nftables]
    /// RFC 2544 asks for zero loss; a virtual switch drops the odd frame at any rate, so the criterion is < 0.001 %.
    static let lossLimit = 0.00001

    static func acceptable(_ trial: EngineReport.Trial) -> Bool {
        trial.sent > 0 && Double(trial.sent - trial.delivered) < Double(trial.sent) * lossLimit
    }

    func run() throws -> ThroughputReport {
        var results: [ThroughputReport.Search] = []
        for frameBytes in frameSizes {
            let bench = EngineBenchmark(
                seconds: seconds, rates: [], flows: flows, servers: servers, frameBytes: frameBytes,
                progress: progress)
            for repetition in 1...repetitions {
                for path in Self.paths {
                    results.append(try search(path, bench: bench, repetition: repetition))
                }
            }
        }
        return ThroughputReport(
            servers: servers, seconds: seconds, flows: flows, lossLimitPercent: Self.lossLimit * 100, searches: results)
    }

    /// Overload first (its offered rate bounds the search), then halving the interval between the highest rate
    /// without loss and the lowest with loss; then the baseline (nothing accepting) at the zero-loss rate, for the
    /// CPU the path adds.
    func search(_ path: EngineBenchmark.Path, bench: EngineBenchmark, repetition: Int) throws
        -> ThroughputReport.Search
    {
        let label = "\(path.rawValue), \(bench.frameBytes) B, run \(repetition)"
        let overload = try bench.trial(path, rate: 0)
        progress(
            "\(label): overload offered \(Int(overload.offeredPerSecond)), delivered \(Int(overload.deliveredPerSecond))"
        )
        var good: EngineReport.Trial? = Self.acceptable(overload) ? overload : nil
        var low = 0.0
        var high = overload.offeredPerSecond
        var trials = [overload]
        if good == nil {
            for _ in 0..<steps {
                let rate = Int((low + high) / 2)
                guard rate > 0 else { break }
                let trial = try bench.trial(path, rate: rate)
                trials.append(trial)
                let passed = Self.acceptable(trial)
                progress(
                    "\(label): \(rate) offered, \(trial.sent - trial.delivered) lost: \(passed ? "pass" : "fail")")
                if passed {
                    low = Double(rate)
                    good = trial
                } else {
                    high = Double(rate)
                }
            }
        }
        var extraCPU: Double?
        if let good, good.delivered > 0 {
            let baseline = try bench.trial(.baseline, rate: good.offeredRate)
            let scaled = baseline.cpuBusySeconds * Double(good.sent) / Double(max(baseline.sent, 1))
            extraCPU = (good.cpuBusySeconds - scaled) / Double(good.delivered) * 1e6
        }
        return ThroughputReport.Search(
            path: path, frameBytes: bench.frameBytes, repetition: repetition,
            zeroLossRate: good?.deliveredPerSecond ?? 0,
            overloadOffered: overload.offeredPerSecond, overloadDelivered: overload.deliveredPerSecond,
            cpuMicrosecondsPerDelivered: good.map { $0.cpuBusySeconds / Double(max($0.delivered, 1)) * 1e6 },
            extraCPUMicrosecondsPerDelivered: extraCPU, trials: trials.count + (extraCPU == nil ? 0 : 1),
            points: trials.map { [$0.offeredPerSecond, $0.deliveredPerSecond] })
    }
}
