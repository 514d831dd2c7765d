import Foundation

/// The figures of `lbbench engine`.
struct EngineReport: Codable {
    struct Trial: Codable {
        var path: EngineBenchmark.Path
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
        var engineRingDrops: [UInt64]
        var engineDrops: [[String: UInt64]]

        var delivered: Int { deliveredPerServer.reduce(0, +) }
        var offeredPerSecond: Double { Double(sent) / seconds }
        var deliveredPerSecond: Double { Double(delivered) / seconds }
    }

    /// The drain-mode ceiling of one engine on one core.
    struct Drain: Codable {
        var sent: Int
        var inspected: UInt64
        var injected: UInt64
        var ringDrops: UInt64
        var seconds: Double
        var inspectedPerSecond: Double { Double(inspected) / seconds }
        var injectedPerSecond: Double { Double(injected) / seconds }
    }

    var seconds: Double
    var flows: Int
    var trials: [Trial]
    var drain: Drain?

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
                    trial.path.rawValue, f(trial.offeredPerSecond, 0), f(trial.deliveredPerSecond, 0),
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
                let kept = trial.prefilterDropped.map { " (the prefilter kept \($0.map(String.init).joined(separator: "/")) out)" }
                result.append(
                    "\(trial.path.rawValue): each ring took \(shares.joined(separator: ", ")) of the frames sent, "
                        + "a share being \(f(100 / Double(trial.engineReceived.count), 1)) %" + (kept ?? ""))
            }
            if let kernel = rows.first(where: { $0.path == .nftables }), kernel.delivered > 0 {
                for engine in rows where engine.path.engineInjection != nil {
                    var line =
                        "\(engine.path.rawValue) / nftables: delivered "
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
        if let drain {
            var table = TextTable(
                title: "Drain: a full ring emptied by one engine (the ceiling of one core)",
                header: ["frames in ring", "inspected/s", "injected into TAP/s", "seconds", "ring drops"])
            table.add([
                "\(drain.inspected)", f(drain.inspectedPerSecond, 0), f(drain.injectedPerSecond, 0),
                f(drain.seconds, 3), "\(drain.ringDrops)",
            ])
            result.append(table.rendered)
        }
        return result.joined(separator: "\n\n")
    }
}
