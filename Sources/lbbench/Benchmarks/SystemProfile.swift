import Foundation
import Testbed

/// Where a machine's time went while a client ran: `perf stat` (context switches, system calls, CPU time) and
/// `perf record -a -g` over the whole machine (every namespace shares the kernel), summarised per thread name and,
/// for the engine thread, per kernel or user function. Debian's `linux-perf` (`make setup`); the cpu-clock software
/// event, so it works in guests without hardware counters.
struct SystemProfile: Codable {
    /// What `requests` (the client's count) cost: per request, machine-wide.
    var requests: Int
    var contextSwitchesPerRequest: Double
    var systemCallsPerRequest: Double
    /// CPU microseconds per request, machine-wide (busy time only).
    var cpuMicrosecondsPerRequest: Double
    /// Share of the busy samples (idle excluded) per thread name ("vipfarm-engine", "nginx", "wrk", ...), in %.
    var busyShareByThread: [String: Double]
    /// Share of the busy samples spent in the kernel, in %.
    var kernelShare: Double
    /// The engine thread's heaviest functions: name and share of the engine's samples, in %.
    var engineTopFunctions: [Function]

    struct Function: Codable {
        var name: String
        var percent: Double
    }

    static let perf = "/usr/bin/perf"

    /// A recording under way.
    struct Recording {
        let statFile: String
        let dataFile: String
        let stat: Process
        let record: Process

        /// Waits for both to end and reads what they recorded.
        func finish(requests: Int) throws -> SystemProfile {
            stat.waitUntilExit()
            record.waitUntilExit()
            guard stat.terminationStatus == 0, record.terminationStatus == 0 else {
                throw FarmError("perf failed (stat exit \(stat.terminationStatus), record \(record.terminationStatus))")
            }
            let counts = try SystemProfile.statCounts(String(contentsOfFile: statFile, encoding: .utf8))
            // Rows of (thread name, binary or [kernel.kallsyms], percent of all samples); idle is "swapper".
            let rows = SystemProfile.rows(try SystemProfile.report(dataFile, ["--sort", "comm,dso"]))
            let busy = rows.filter { $0.columns.first != "swapper" }
            let busyTotal = max(busy.map(\.percent).reduce(0, +), 0.0001)
            let allTotal = max(rows.map(\.percent).reduce(0, +), 0.0001)
            var byThread: [String: Double] = [:]
            for row in busy { byThread[row.columns.first ?? "?", default: 0] += 100 * row.percent / busyTotal }
            let kernel = busy.filter { $0.columns.last?.hasPrefix("[kernel") == true }.map(\.percent).reduce(0, +)
            let engine = SystemProfile.rows(
                try SystemProfile.report(dataFile, ["--comms", SystemProfile.engineThread, "--percentage", "relative", "--sort", "sym"]))
            let engineTotal = max(engine.map(\.percent).reduce(0, +), 0.0001)
            let perRequest = { (value: Double) in value / Double(max(requests, 1)) }
            return SystemProfile(
                requests: requests,
                contextSwitchesPerRequest: perRequest(counts["context-switches"] ?? 0),
                systemCallsPerRequest: perRequest(counts["raw_syscalls:sys_enter"] ?? 0),
                cpuMicrosecondsPerRequest: perRequest((counts["cpu-clock"] ?? 0) * 1000) * busyTotal / allTotal,
                busyShareByThread: byThread,
                kernelShare: 100 * kernel / busyTotal,
                engineTopFunctions: engine.sorted { $0.percent > $1.percent }.prefix(8).map {
                    Function(name: $0.columns.joined(separator: " "), percent: 100 * $0.percent / engineTotal)
                })
        }
    }

    /// Starts recording the whole machine for `seconds`, into `directory` under `label`.
    static func start(seconds: Int, directory: String, label: String) throws -> Recording {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func perf(_ arguments: [String]) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.perf)
            process.arguments = arguments + ["--", "sleep", "\(seconds)"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let statFile = "\(directory)/\(label).stat"
        let dataFile = "\(directory)/\(label).perf.data"
        let stat = try perf([
            "stat", "-a", "-x", ",", "-o", statFile, "-e", "context-switches,raw_syscalls:sys_enter,cpu-clock",
        ])
        let record = try perf(["record", "-a", "-g", "-F", "999", "-q", "-o", dataFile])
        return Recording(statFile: statFile, dataFile: dataFile, stat: stat, record: record)
    }

    /// `perf stat -x,` lines: "value,unit,event,...".
    static func statCounts(_ text: String) -> [String: Double] {
        var counts: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count > 2, let value = Double(fields[0]) else { continue }
            counts[String(fields[2])] = value
        }
        return counts
    }

    /// `perf report` over `data`, flat (no call graphs), sorted as `arguments` say.
    static func report(_ data: String, _ arguments: [String]) throws -> String {
        let (status, output) = try runToEnd(
            in: nil, perf,
            ["report", "-i", data, "--stdio", "--no-children", "-g", "none", "--percent-limit", "0.5"] + arguments,
            timeout: 120)
        guard status == 0 else { throw FarmError("perf report -i \(data) failed (exit \(status)): \(output)") }
        return output
    }

    /// The engine's thread, by the name it gives itself.
    static let engineThread = "vipfarm-engine"

    struct Row {
        var percent: Double
        var columns: [String]
    }

    /// "    45.12%  nginx            [kernel.kallsyms]" lines: the percent and the columns (two spaces or more apart).
    static func rows(_ report: String) -> [Row] {
        report.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let percent = trimmed.firstIndex(of: "%"),
                let value = Double(trimmed[..<percent])
            else { return nil }
            let columns = trimmed[trimmed.index(after: percent)...].components(separatedBy: "  ")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return Row(percent: value, columns: columns)
        }
    }
}
