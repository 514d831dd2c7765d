import Foundation
import Testing

@testable import lbbench

/// The machine's busy CPU as the benchmarks report it: wall time of every CPU less the kernel's measured idle time.
struct CPUSampleTests {
    static func stat(idle: UInt64, iowait: UInt64, steal: UInt64 = 0, user: UInt64) -> String {
        """
        cpu  \(user) 0 500 \(idle) \(iowait) 0 70 \(steal) 0 0
        cpu0 1 0 1 1 0 0 0 0 0 0
        cpu1 1 0 1 1 0 0 0 0 0 0
        intr 12345
        """
    }

    /// Two CPUs for 2 s with 1.5 s of idle, iowait and steal between the samples: 2.5 busy seconds, whatever the
    /// tick-sampled user field says (here far more than two CPUs could have run).
    @Test func busyIsWallTimeLessIdle() {
        let start = ContinuousClock.now
        let before = CPUSample.parse(Self.stat(idle: 1000, iowait: 10, steal: 3, user: 5), at: start)
        let after = CPUSample.parse(Self.stat(idle: 1130, iowait: 20, steal: 13, user: 9000), at: start + .seconds(2))
        #expect(before.cpus == 2)
        #expect(abs(CPUSample.busySeconds(from: before, to: after) - 2.5) < 1e-9)
    }

    /// A thread that wakes every 4 ms (the tick's period at 250 Hz, lbnode's heartbeat interval) for about 0.1 ms is
    /// counted as what it ran, within what the rest of the machine does meanwhile: not at every tick nor at none.
    @Test func aThreadWakingAtTheTicksPeriodIsCountedAsWhatItRan() {
        let ownBefore = Self.threadCPUSeconds()
        let before = CPUSample.now()
        let clock = ContinuousClock()
        let end = clock.now + .seconds(2)
        var next = clock.now
        while clock.now < end {
            let busyUntil = clock.now + .microseconds(100)
            while clock.now < busyUntil {}
            next = next + .milliseconds(4)
            Thread.sleep(forTimeInterval: max(0, (next - clock.now).inSeconds))
        }
        let machine = CPUSample.busySeconds(from: before, to: CPUSample.now())
        let own = Self.threadCPUSeconds() - ownBefore
        // The machine ran this thread and whatever else ran meanwhile (the host's own threads, a few percent): at least
        // this thread's time, and not much more. `/proc/stat`'s tick-sampled fields gave 0.01 s or 0.36 s for 0.08 s.
        #expect(machine >= own * 0.8, "machine \(machine) s, this thread \(own) s")
        #expect(machine < own + 0.5, "machine \(machine) s, this thread \(own) s")
    }

    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
