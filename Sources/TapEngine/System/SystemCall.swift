import CKernel
import Glibc

/// The one way lbnode, lbbench and the testbed make a system call that can fail: a call interrupted by a signal
/// (`EINTR`) is made again, any other failure throws `SystemCallError` naming the C function and what was being done.
public enum SystemCall {
    /// Calls `body` until it returns something other than a failure with `EINTR`; a negative result throws.
    @discardableResult
    public static func retrying<Result: BinaryInteger>(
        _ function: String, _ operation: @autoclosure () -> String, _ body: () -> Result
    ) throws(SystemCallError) -> Result {
        while true {
            let result = body()
            if result >= 0 { return result }
            let failure = errno
            if failure != EINTR { throw SystemCallError(function, operation(), errno: failure) }
        }
    }

    /// Like `retrying`, but a failure with `EAGAIN` (a non-blocking call that would wait) returns nil.
    public static func unlessWouldBlock<Result: BinaryInteger>(
        _ function: String, _ operation: @autoclosure () -> String, _ body: () -> Result
    ) throws(SystemCallError) -> Result? {
        do {
            return try retrying(function, operation(), body)
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }
}

extension SystemCall {
    /// The calling thread's nice value.
    public static func threadNice() -> Int32 {
        errno = 0
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(vipfarm_thread_id()))
    }

    /// Runs this thread under `SCHED_FIFO` at `priority` (1-99): it then runs before any thread of the normal policy,
    /// the kernel's softirq threads included, whenever it is runnable. Threads it starts do not inherit the policy
    /// (`SCHED_RESET_ON_FORK`). Needs `CAP_SYS_NICE` (and a unit without `RestrictRealtime=`).
    public static func setThreadRealtime(priority: Int32) throws(SystemCallError) {
        let thread = pid_t(vipfarm_thread_id())
        var parameters = sched_param(sched_priority: priority)
        let resetOnFork: Int32 = 0x4000_0000  // SCHED_RESET_ON_FORK, linux/sched.h
        try retrying("sched_setscheduler", "run this thread under SCHED_FIFO at priority \(priority)") {
            sched_setscheduler(thread, SCHED_FIFO | resetOnFork, &parameters)
        }
    }

    /// Keeps every page of this process in memory once touched, now and later (`mlockall` with `MCL_ONFAULT`: nothing
    /// is faulted in ahead, so reserved stacks and arenas cost nothing until used). A host that reclaims cold pages
    /// (memory pressure, or proactive reclaim such as DAMON's on VMs) otherwise pages out code the heartbeat loop runs
    /// rarely, and the loop then waits for the disk.
    ///
    /// - Throws: `SystemCallError` (without `CAP_IPC_LOCK`, beyond `RLIMIT_MEMLOCK`). The corresponding C function is
    ///   `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`.
    public static func lockMemory() throws(SystemCallError) {
        let onFault: Int32 = 4  // MCL_ONFAULT, linux/mman.h (Linux 4.4)
        _ = try retrying("mlockall", "lock this process's pages in memory") {
            mlockall(MCL_CURRENT | MCL_FUTURE | onFault)
        }
    }

    /// The calling thread's ID (the kernel's, as `gettid` gives it).
    public static func threadID() -> Int32 { Int32(vipfarm_thread_id()) }

    /// Moves thread `thread` onto the CPU the caller runs on, then gives it back the CPUs it had. A real-time thread
    /// woken on a CPU that runs a long kernel section without a preemption point stays queued there (the scheduler
    /// keeps it on its CPU, trusting preemption); moved, it runs at once.
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `sched_getaffinity` and `sched_setaffinity`.
    public static func moveThreadToThisCPU(_ thread: Int32) throws(SystemCallError) {
        let cpu = vipfarm_current_cpu()
        _ = try retrying("sched_setaffinity", "move thread \(thread) to CPU \(cpu)") {
            cpu < 0 ? -1 : vipfarm_move_thread(thread, UInt32(cpu))
        }
    }

    /// Returns this thread to the normal policy (`SCHED_OTHER`) from a real-time one.
    public static func setThreadNormalPolicy() throws(SystemCallError) {
        let thread = pid_t(vipfarm_thread_id())
        var parameters = sched_param(sched_priority: 0)
        try retrying("sched_setscheduler", "return this thread to SCHED_OTHER") {
            sched_setscheduler(thread, SCHED_OTHER, &parameters)
        }
    }

    /// Sets the calling thread's nice value (-20 to 19; lower is a larger share of the CPU when threads compete).
    ///
    /// - Throws: `SystemCallError`. The corresponding C function is `setpriority(PRIO_PROCESS, gettid(), value)`.
    public static func setThreadNice(_ value: Int32) throws(SystemCallError) {
        let thread = id_t(vipfarm_thread_id())
        try retrying("setpriority", "set this thread's nice value to \(value)") {
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), thread, value)
        }
    }

    /// Moves descriptor `fd` to the top of this process's descriptor table (the highest number the soft
    /// `RLIMIT_NOFILE` allows, at most 1023) and closes the original; returns the new number, or `fd` where no higher
    /// one is free. A process that dies has its descriptors released from the highest down (the kernel defers each
    /// release and runs the last one queued first), and packet sockets, tcx links and the TAP each wait there for an
    /// RCU grace period: 60 ms in all on a 2-core VM. A descriptor on top is released before any of them.
    ///
    /// The corresponding C functions are `getrlimit(RLIMIT_NOFILE)` and `fcntl(F_DUPFD_CLOEXEC)`.
    public static func movedToTopOfTable(_ fd: Int32) -> Int32 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return fd }
        let top = Int32(clamping: min(limit.rlim_cur, 1024)) - 1
        guard top > fd else { return fd }
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, top)
        guard moved >= 0 else { return fd }
        close(fd)
        return moved
    }
}
