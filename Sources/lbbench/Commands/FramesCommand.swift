import ArgumentParser
import Foundation

/// `lbbench frames`: the engine's per-frame Swift work and its allocations.
struct FramesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frames",
        abstract: "Measure the engine's own work per frame (parse + decide) and count its heap allocations.",
        discussion: """
            Runs the parser and the decision over --frames prebuilt frames (UDP, TCP, ARP, malformed) in memory, \
            with no system call, and reports nanoseconds per frame (median of --repetitions passes): the engine's \
            way (the next frame parsed and its flow-table sets prefetched while one is decided) and, alternating \
            with it, one frame at a time. A final pass runs with a malloc interposer counting every allocation in \
            the process; lbbench restarts itself with LD_PRELOAD to load it. As root, it also times the kernel \
            delivery classifier over the first 2000 frames in the kernel (BPF_PROG_TEST_RUN), with and without \
            its check of lbnode's heartbeat socket, the two alternating.
            """
    )

    @Option(help: "Frames per pass.")
    var frames = 1_000_000

    @Option(help: "Timed passes; the median is reported.")
    var repetitions = 5

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard (1000...10_000_000).contains(frames) else {
            throw ValidationError("--frames must be from 1000 to 10000000")
        }
        guard (1...50).contains(repetitions) else { throw ValidationError("--repetitions must be from 1 to 50") }
    }

    func run() throws {
        if !FrameWorkBenchmark.interposerIsLoaded, try restartWithInterposer() { return }
        let report = try FrameWorkBenchmark(frames: frames, repetitions: repetitions).run()
        var table = TextTable(
            title: "Engine work per frame (\(report.frames) frames, no system calls)",
            header: ["measure", "value"])
        table.add(["parse, ns/frame", String(format: "%.1f", report.nanosecondsPerFrameParse)])
        table.add(["parse + decide, ns/frame", String(format: "%.1f", report.nanosecondsPerFrameParseAndDecide)])
        table.add([
            "the same, one frame at a time (no lookahead), ns/frame",
            String(format: "%.1f", report.nanosecondsPerFrameOneAtATime),
        ])
        table.add([
            "heap allocations in one pass",
            report.allocationsCounted ? "\(report.allocations)" : "not counted (interposer not loaded)",
        ])
        if let classifier = report.classifier {
            table.add([
                "kernel classifier, ns/frame (acted on \(classifier.actedOn) of \(classifier.frames))",
                String(format: "%.1f", classifier.nanosecondsWithHeartbeatCheck),
            ])
            table.add([
                "the same without its heartbeat-socket check, ns/frame",
                String(format: "%.1f", classifier.nanosecondsWithoutHeartbeatCheck),
            ])
        } else {
            table.add(["kernel classifier", "not timed: \(report.classifierNotTimed ?? "?")"])
        }
        let verdicts =
            "verdicts per pass: "
            + report.verdicts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        try output.emit(
            "frames", title: "lbbench frames: the engine's work per frame", table: table.rendered + "\n" + verdicts,
            value: report)
    }

    /// Runs this command again with the interposer preloaded; `false` when its library is not beside lbbench.
    private func restartWithInterposer() throws -> Bool {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let library = executable.deletingLastPathComponent().appendingPathComponent("libMallocInterposerSwift.so")
        guard FileManager.default.fileExists(atPath: library.path) else { return false }
        let process = Process()
        process.executableURL = executable
        process.arguments = Array(CommandLine.arguments.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = library.path
        process.environment = environment
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ExitCode(process.terminationStatus) }
        return true
    }
}
