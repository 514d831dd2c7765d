import Foundation
import Synchronization
import TapEngine

/// Moves the heartbeat loop off a CPU that cannot run it. The loop runs under `SCHED_FIFO`, and the scheduler wakes a
/// real-time thread on the CPU it last ran on whenever that CPU runs a normal thread, trusting that it preempts it at
/// once. On a kernel without full preemption (`PREEMPT_NONE` or voluntary: most server and VM kernels) it does not
/// while that thread is inside a long kernel section: another lbnode allocating its 32 MiB packet ring on a VM that
/// hands freed memory back to its host held a loop 70-104 ms, longer than a test farm's failover time, while the other
/// CPU sat idle. So a watcher thread of the normal policy (which the scheduler wakes on an idle CPU) checks each wait
/// of the loop: if the loop has not woken 2 ms after its wait ended, it moves it onto its own CPU, where it runs.
final class WakeupRescue: Sendable {
    private let thread: Int32
    private let origin = ContinuousClock.now
    /// When the loop's current wait ends (ns since `origin`), or 0 while the loop runs.
    private let due = Atomic<Int64>(0)
    private let running = Atomic<Bool>(true)
    /// Rescues so far, and the first failure to move the loop, if any.
    let rescues = Atomic<Int>(0)
    private let failure = Mutex<SystemCallError?>(nil)
    static let graceNanoseconds: Int64 = 2_000_000

    /// Watches the calling thread (the loop's).
    init() { thread = SystemCall.threadID() }

    private var now: Int64 { Int64((ContinuousClock.now - origin) / .nanoseconds(1)) }

    /// The loop waits until `deadline`.
    func waiting(until deadline: ContinuousClock.Instant) {
        due.store(max(1, Int64((deadline - origin) / .nanoseconds(1))), ordering: .releasing)
    }

    /// The loop woke.
    func woke() { due.store(0, ordering: .releasing) }

    /// The error that kept the watcher from moving the loop (reported once), if any.
    func takeFailure() -> SystemCallError? { failure.withLock { $0.take() } }

    func start() {
        let watcher = Thread { [self] in watch() }
        watcher.name = "vipfarm-wakeup"
        watcher.start()
    }

    func stop() { running.store(false, ordering: .relaxed) }

    private func watch() {
        var rescued: Int64 = 0
        var failed = false
        while running.load(ordering: .relaxed) {
            let wait = due.load(ordering: .acquiring)
            let late = wait == 0 ? Self.graceNanoseconds : wait + Self.graceNanoseconds - now
            if wait == 0 || late > 0 || wait == rescued {
                // While the loop runs, a look every 2 ms; while it waits, at its end plus the grace.
                Thread.sleep(forTimeInterval: Double(max(late, Self.graceNanoseconds)) / 1e9)
                continue
            }
            rescued = wait
            do {
                try SystemCall.moveThreadToThisCPU(thread)
                rescues.add(1, ordering: .relaxed)
            } catch {
                if !failed { failure.withLock { $0 = error } }
                failed = true
            }
        }
    }
}
