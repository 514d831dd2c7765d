import ArgumentParser
import Foundation

/// `lbbench engine`: the data path against the in-kernel alternative, on a testbed.
struct EngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Measure the engine's data path against nftables jhash on a testbed (needs root).",
        discussion: """
            Builds a fresh testbed per path (a client, a switch, two servers with a UDP sink each) and sends 64-byte \
            UDP frames from many client flows to the VIP's MAC with sendmmsg: first with nothing accepting them \
            (baseline), then as lbnode runs by default (kernel delivery: the kernel's classifier decides every \
            datagram), then through vipfarm's engine alone (with its bucket prefilter, without it, and with one TAP \
            write per frame), then through an nftables netdev ingress jhash split. Prints offered and delivered \
            packets per second, per-server counts, loss, machine CPU and the extra CPU per delivered packet over the \
            baseline, the share of the frames each engine took (and each of its threads), and the engine's drops by \
            reason. Each rate is one trial per path and thread count (--threads). Then the drain, per thread count: \
            a stopped engine's rings filled, and how fast the engine empties them (three drains, their median).
            """
    )

    @Option(help: "Seconds per trial.")
    var seconds: Double = 3

    @Option(parsing: .upToNextOption, help: "Offered rates in frames per second; 0 = as fast as the generator goes.")
    var rates: [Int] = [100_000, 0]

    @Option(help: "Distinct client flows (addresses and ports).")
    var flows: Int = 4096

    @Option(
        parsing: .upToNextOption,
        help: "Engine threads per server: the engine paths and the drains run for each count.")
    var threads: [Int] = [1]

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard (0.5...60).contains(seconds) else { throw ValidationError("--seconds must be from 0.5 to 60") }
        guard !rates.isEmpty, rates.allSatisfy({ (0...5_000_000).contains($0) }) else {
            throw ValidationError("--rates must be from 0 to 5000000 (0 = full speed)")
        }
        guard (1...65536).contains(flows) else { throw ValidationError("--flows must be from 1 to 65536") }
        guard !threads.isEmpty, threads.allSatisfy({ (1...64).contains($0) }) else {
            throw ValidationError("--threads must be from 1 to 64")
        }
    }

    func run() throws {
        try requireRoot()
        var benchmark = EngineBenchmark(seconds: seconds, rates: rates, flows: flows) { line in
            FileHandle.standardError.write(Data("lbbench engine: \(line)\n".utf8))
        }
        benchmark.threadCounts = threads
        let report = try benchmark.run()
        try output.emit(
            "engine", title: "lbbench engine: the data path against nftables", table: report.table, value: report)
    }
}
