import Foundation

/// Machine-wide busy CPU time: the cost of a whole path (generator, bridge, softirq, engine, application) is the
/// difference of two samples.
///
/// Busy is the wall-clock time of every online CPU less its idle time, not the sum of `/proc/stat`'s busy fields:
/// on a tickless kernel the idle time there is measured (the scheduler's idle accounting), but user, system and
/// softirq are sampled at each timer tick, and a thread that wakes at the tick's own period (lbnode's heartbeat loop
/// every 4 ms, the tick at 250 Hz) is counted at every tick or at none. A farm of three lbnodes at rest that used
/// 0.25 of a core by their own counts and by `cpuidle` showed 0.81 cores busy in those fields (254 ticks a second on
/// two CPUs, where there are 200), and 0.27 as wall time less idle. Time the hypervisor took (steal, measured too)
/// is not the path's either.
struct CPUSample {
    /// Idle, iowait and steal, in clock ticks (USER_HZ).
    let idle: UInt64
    /// Online CPUs (the `cpuN` lines).
    let cpus: Int
    let at: ContinuousClock.Instant

    /// Clock ticks per second of `/proc/stat`.
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func now() -> CPUSample {
        let text = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        return parse(text, at: .now)
    }

    static func parse(_ text: String, at instant: ContinuousClock.Instant) -> CPUSample {
        let lines = text.split(separator: "\n")
        let fields = lines.first?.split(separator: " ").dropFirst().compactMap { UInt64($0) } ?? []
        let cpus = lines.filter { $0.hasPrefix("cpu") && ($0.dropFirst(3).first?.isNumber ?? false) }.count
        let idle = fields.count > 7 ? fields[3] + fields[4] + fields[7] : 0
        return CPUSample(idle: idle, cpus: max(1, cpus), at: instant)
    }

    /// Busy CPU seconds between two samples.
    static func busySeconds(from start: CPUSample, to end: CPUSample) -> Double {
        let wall = (end.at - start.at).inSeconds
        let idle = Double(end.idle &- start.idle) / ticksPerSecond
        return max(0, wall * Double(end.cpus) - idle)
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
