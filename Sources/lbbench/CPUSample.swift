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
