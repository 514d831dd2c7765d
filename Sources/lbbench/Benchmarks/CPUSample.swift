import Foundation

/// Machine-wide CPU time from `/proc/stat`, in clock ticks (USER_HZ): the cost of a whole path (generator, bridge,
/// softirq, engine, application) is the difference of two samples.
struct CPUSample {
    let busy: UInt64
    let total: UInt64

    /// Clock ticks per second of `/proc/stat`.
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func now() -> CPUSample {
        let text = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        let fields =
            text.split(separator: "\n").first?.split(separator: " ").dropFirst().compactMap { UInt64($0) } ?? []
        let total = fields.prefix(8).reduce(0, +)
        let idle = fields.count > 4 ? fields[3] + fields[4] : 0  // idle + iowait
        return CPUSample(busy: total - idle, total: total)
    }

    /// Busy CPU seconds between two samples.
    static func busySeconds(from start: CPUSample, to end: CPUSample) -> Double {
        Double(end.busy - start.busy) / ticksPerSecond
    }
}

/// CPU time of processes (every thread), from `/proc/<pid>/stat`, in seconds: what the lbnodes themselves cost.
func processCPUSeconds(_ pids: [pid_t]) -> Double {
    pids.map { pid -> Double in
        let text = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // The command name may hold spaces: the fields start after its closing parenthesis (utime, stime: 14, 15).
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / CPUSample.ticksPerSecond
    }.reduce(0, +)
}
