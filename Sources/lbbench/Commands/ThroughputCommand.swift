import ArgumentParser
import Foundation
import Hashing

/// `lbbench pps`: the throughput benchmark against nftables, on a testbed.
struct ThroughputCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pps",
        abstract: "Find the highest loss-free packet rate, engine against nftables jhash (RFC 2544 style; root).",
        discussion: """
            For each frame size and path (vipfarm as lbnode runs by default, with kernel delivery; vipfarm's engine \
            alone, ring + io_uring; the in-kernel nftables jhash split), on fresh testbeds of one client, a switch \
            and N servers with a UDP sink each: a trial at the generator's full speed (the delivered rate at \
            overload), then a binary search for the highest offered rate with loss under 0.001 %, then the \
            baseline (nothing accepting) at that rate to subtract the generator's and switch's CPU. Repeated; min / \
            median / max, and the ratio to nftables \
            measured in the same run. With --vip, on a client of a real farm (servers running `lbnode run` and \
            `lbbench serve`): the same search with UDP requests from many flows, answers counted per server.
            """
    )

    @Option(parsing: .upToNextOption, help: "Frame sizes in bytes on the wire (64 to 1518).")
    var frameSizes: [Int] = [64, 512]

    @Option(help: "Servers sharing the VIP.")
    var servers = 2

    @Option(help: "Seconds per trial.")
    var seconds = 1.0

    @Option(name: .customLong("repeat"), help: "Repetitions of each search.")
    var repetitions = 3

    @Option(help: "Binary-search steps (resolution: full speed / 2^steps).")
    var steps = 6

    @OptionGroup var farm: RealFarmOptions

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard !frameSizes.isEmpty, frameSizes.allSatisfy({ (64...1518).contains($0) }) else {
            throw ValidationError("--frame-sizes must be from 64 to 1518")
        }
        guard (1...16).contains(servers) else { throw ValidationError("--servers must be from 1 to 16") }
        guard (0.2...60).contains(seconds) else { throw ValidationError("--seconds must be from 0.2 to 60") }
        guard (1...100).contains(repetitions) else { throw ValidationError("--repeat must be from 1 to 100") }
        guard (1...16).contains(steps) else { throw ValidationError("--steps must be from 1 to 16") }
    }

    func run() throws {
        let progress = { (line: String) in FileHandle.standardError.write(Data("lbbench pps: \(line)\n".utf8)) }
        if let vip = farm.address {
            let report = try RealHostThroughput(
                vip: vip, interface: farm.interface, frameSizes: frameSizes, seconds: seconds,
                repetitions: repetitions, steps: steps, progress: progress
            ).run()
            try output.emit("pps", title: "lbbench pps on a real farm", table: report.table, value: report)
            return
        }
        try requireRoot()
        warnAboutLeftovers()
        let benchmark = ThroughputBenchmark(
            frameSizes: frameSizes, servers: servers, seconds: seconds, repetitions: repetitions, steps: steps,
            progress: progress)
        let report = try benchmark.run()
        try output.emit(
            "pps", title: "lbbench pps: throughput against nftables", table: report.table, value: report,
            charts: report.charts)
    }
}
