import CKernel
import Foundation

/// One thread of another process held still (ptrace) while the process's other threads run on: what a thread that
/// waits for a lock, or that the host does not run, looks like to the rest of its process. `SIGSTOP` stops them all.
///
/// Threads: `init` and `release` on the same thread (the kernel takes the thread that seized as the tracer).
public final class ThreadFreeze {
    public let thread: pid_t
    private var held = true

    /// Stops `thread` (a TID); returns once it has stopped.
    ///
    /// - Throws: `SystemCallError` when the kernel refuses (no such thread, no `CAP_SYS_PTRACE`, already traced).
    public init(thread: pid_t) throws(SystemCallError) {
        guard vipfarm_thread_stop(thread) == 0 else {
            throw SystemCallError("ptrace(PTRACE_SEIZE)", "stop thread \(thread)")
        }
        self.thread = thread
    }

    /// Lets the thread run again.
    public func release() {
        guard held else { return }
        held = false
        _ = vipfarm_thread_resume(thread)
    }

    deinit { release() }

    /// The threads of process `pid` that run under `SCHED_FIFO` (lbnode's heartbeat loop does), by /proc.
    public static func realtimeThreads(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { Int32($0) }.filter { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            // Fields after the command's closing parenthesis start at field 3; the policy is field 41.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 38 && fields[38] == "1"  // SCHED_FIFO
        }.sorted()
    }
}
