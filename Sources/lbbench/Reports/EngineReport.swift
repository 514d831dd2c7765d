import Foundation

/// The figures of `lbbench engine`.
struct EngineReport: Codable {
    struct Trial: Codable {
        var path: EngineBenchmark.Path
        /// Engine paths: the threads of each server's engine.
        var threads: Int? = nil
        /// Frames per second asked of the generator; 0 = as fast as it goes.
        var offeredRate: Int
        var sent: Int
        var seconds: Double
        /// Datagrams each server's socket received.
        var deliveredPerServer: [Int]
        /// Machine-wide busy CPU seconds during the trial (generator, switch, servers, engines, sinks).
        var cpuBusySeconds: Double
        /// Engine path only: frames each engine read, ring drops, drops by reason.
        var engineReceived: [UInt64]
        /// Engine path only: frames each engine's prefilter kept out of its ring (nil in reports from before it).
        var prefilterDropped: [UInt64]?
        /// Engine path only: frames each engine accepted and wrote into its TAP.
        var engineAccepted: [UInt64]
        /// Engine paths: frames each server's kernel delivered and dropped without the engine (kernel delivery; nil
        /// in reports from before it).
        var kernelDelivered: [UInt64]? = nil
        var kernelDropped: [UInt64]? = nil
        var engineRingDrops: [UInt64]
        /// Engine paths: frames each engine's threads read, and frames that reached a thread other than their
        /// client's.
        var threadReceived: [[UInt64]]? = nil
        var wrongThread: [UInt64]? = nil
        var engineDrops: [[String: UInt64]]

        var label: String { threads.map { "\(path.rawValue), \($0) thread\($0 == 1 ? "" : "s")" } ?? path.rawValue }

        var delivered: Int { deliveredPerServer.reduce(0, +) }
        var offeredPerSecond: Double { Double(sent) / seconds }
        var deliveredPerSecond: Double { Double(delivered) / seconds }
    }

    /// The drain-mode ceiling of one engine with `threads` threads.
    struct Drain: Codable {
        var threads: Int
        var sent: Int
        var inspected: UInt64
        var injected: UInt64
        var ringDrops: UInt64
        var seconds: Double
        /// Frames each thread inspected, and frames on the wrong thread.
        var perThread: [UInt64]
        var wrongThread: UInt64
        /// Frames inspected per second in each of the drains of this thread count; this one is their median.
        var runs: [Double] = []
        var inspectedPerSecond: Double { Double(inspected) / seconds }
        var injectedPerSecond: Double { Double(injected) / seconds }
    }

    var seconds: Double
    var flows: Int
    var trials: [Trial]
    var drains: [Drain]

    /// The largest thread's frames over the smallest's: 1 is an even split.
    static func balance(_ perThread: [UInt64]) -> Double? {
        guard perThread.count > 1, let low = perThread.min(), low > 0 else { return nil }
        return Double(perThread.max()!) / Double(low)
    }

    /// Extra CPU microseconds per delivered packet over the baseline at the same offered rate.
    func extraMicrosecondsPerDelivered(_ trial: Trial) -> Double? {
        guard trial.path != .baseline, trial.delivered > 0,
            let baseline = trials.first(where: { $0.path == .baseline && $0.offeredRate == trial.offeredRate })
        else { return nil }
        // Scale the baseline to the trial's frames sent, since paths can differ slightly in what the generator managed.
        let baselineCPU = baseline.cpuBusySeconds * Double(trial.sent) / Double(max(baseline.sent, 1))
        return (trial.cpuBusySeconds - baselineCPU) / Double(trial.delivered) * 1e6
    }

    var table: String {
        let f = { (value: Double, decimals: Int) in String(format: "%.\(decimals)f", value) }
        var result: [String] = []
        for rate in Set(trials.map(\.offeredRate)).sorted(by: { $0 == 0 ? false : ($1 == 0 ? true : $0 < $1) }) {
            var table = TextTable(
                title: "Offered \(rate == 0 ? "at full generator speed" : "\(rate) frames/s"), \(flows) client flows, "
                    + "64-byte UDP, \(f(seconds, 1)) s per path",
                header: [
                    "path", "offered pps", "delivered pps", "per server (total)", "loss %", "CPU busy %",
                    "extra µs/delivered", "engine received/accepted", "engine drops",
                ])
            let rows = trials.filter { $0.offeredRate == rate }
            for trial in rows {
                let loss =
                    trial.path == .baseline
                    ? "-" : f(100 * (1 - Double(trial.delivered) / Double(max(trial.sent, 1))), 3)
                let drops =
                    trial.engineDrops.isEmpty
                    ? "-"
                    : trial.engineDrops.enumerated().map { index, drops in
                        "s\(index + 1): "
                            + drops.filter { $0.key != "not_owner" }.sorted { $0.key < $1.key }
                            .map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                            + " ring=\(trial.engineRingDrops[index])"
                    }.joined(separator: "; ")
                table.add([
                    trial.label, f(trial.offeredPerSecond, 0), f(trial.deliveredPerSecond, 0),
                    trial.deliveredPerServer.map(String.init).joined(separator: "/"), loss,
                    f(100 * trial.cpuBusySeconds / trial.seconds / 2, 1),
                    extraMicrosecondsPerDelivered(trial).map { f($0, 2) } ?? "-",
                    trial.engineReceived.isEmpty
                        ? "-"
                        : zip(trial.engineReceived, trial.engineAccepted).map { "\($0)/\($1)" }.joined(separator: " "),
                    drops,
                ])
            }
            result.append(table.rendered)
            for trial in rows where !trial.engineReceived.isEmpty && trial.sent > 0 {
                // What each engine's ring took, against its share of the farm's frames (1/servers).
                let shares = trial.engineReceived.map { f(100 * Double($0) / Double(trial.sent), 1) + " %" }
                let kept = trial.prefilterDropped.map {
                    " (the prefilter kept \($0.map(String.init).joined(separator: "/")) out)"
                }
                result.append(
                    "\(trial.label): each engine took \(shares.joined(separator: ", ")) of the frames sent, "
                        + "a share being \(f(100 / Double(trial.engineReceived.count), 1)) %" + (kept ?? ""))
                if let delivered = trial.kernelDelivered, let dropped = trial.kernelDropped,
                    delivered.contains(where: { $0 > 0 })
                {
                    let counts = [delivered, dropped].map { $0.map(String.init).joined(separator: "/") }
                    result.append(
                        "\(trial.label): each server's kernel delivered \(counts[0]) and dropped \(counts[1]) frames "
                            + "without the engine")
                }
                if let perThread = trial.threadReceived, perThread.contains(where: { $0.count > 1 }) {
                    let split = perThread.map { threads in
                        threads.map(String.init).joined(separator: "/")
                            + (Self.balance(threads).map { " (max/min \(f($0, 3)))" } ?? "")
                    }
                    let wrong = (trial.wrongThread ?? []).reduce(0, +)
                    result.append(
                        "\(trial.label): frames per thread \(split.joined(separator: ", ")), on the wrong thread \(wrong)"
                    )
                }
            }
            if let kernel = rows.first(where: { $0.path == .nftables }), kernel.delivered > 0 {
                for engine in rows where engine.path.engineInjection != nil {
                    var line =
                        "\(engine.label) / nftables: delivered "
                        + "\(f(engine.deliveredPerSecond / kernel.deliveredPerSecond, 2))x"
                    if let e = extraMicrosecondsPerDelivered(engine), let k = extraMicrosecondsPerDelivered(kernel),
                        k > 0
                    {
                        line += ", CPU per delivered packet \(f(e / k, 2))x"
                    }
                    result.append(line)
                }
            }
        }
        if !drains.isEmpty {
            var table = TextTable(
                title: "Drain: full rings emptied by one engine (its ceiling with that many threads; the median drain)",
                header: [
                    "threads", "frames in rings", "inspected/s", "each drain, inspected/s", "injected into TAP/s",
                    "seconds", "ring drops", "per thread (max/min)", "wrong thread",
                ])
            for drain in drains {
                table.add([
                    "\(drain.threads)", "\(drain.inspected)", f(drain.inspectedPerSecond, 0),
                    drain.runs.map { f($0, 0) }.joined(separator: " "), f(drain.injectedPerSecond, 0),
                    f(drain.seconds, 3), "\(drain.ringDrops)",
                    drain.perThread.map(String.init).joined(separator: "/")
                        + (Self.balance(drain.perThread).map { " (\(f($0, 3)))" } ?? ""),
                    "\(drain.wrongThread)",
                ])
            }
            result.append(table.rendered)
            if let one = drains.first(where: { $0.threads == 1 }), one.inspectedPerSecond > 0 {
                for more in drains where more.threads > 1 {
                    result.append(
                        "drain, \(more.threads) threads / 1 thread: "
                            + "\(f(more.inspectedPerSecond / one.inspectedPerSecond, 2))x frames inspected per second")
                }
            }
        }
        return result.joined(separator: "\n\n")
    }
}
