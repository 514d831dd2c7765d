import Foundation
import Synchronization
import Testing

@testable import lbnode

/// The watcher moves a loop that did not wake at the end of its wait, once per wait, and leaves it the CPUs it had.
struct WakeupRescueTests {
    /// The CPUs this thread may run on, as the kernel lists them.
    static func allowedCPUs() -> String? {
        let status = (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }.map(String.init)
    }

    @Test func aLoopLateToWakeIsMovedOnceAndKeepsItsCPUs() throws {
        let before = try #require(Self.allowedCPUs())
        let rescue = WakeupRescue()  // watches this thread
        rescue.start()
        defer { rescue.stop() }
        // A wait that ended 5 ms ago, and this thread has not said it woke (as a loop queued on a stuck CPU).
        rescue.waiting(until: .now - .milliseconds(5))
        let deadline = Date().addingTimeInterval(2)
        while rescue.rescues.load(ordering: .relaxed) == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
        #expect(rescue.takeFailure() == nil)
        #expect(rescue.rescues.load(ordering: .relaxed) == 1)
        Thread.sleep(forTimeInterval: 0.02)
        #expect(rescue.rescues.load(ordering: .relaxed) == 1, "the same wait is not moved twice")
        #expect(Self.allowedCPUs() == before)
        // A wait that ends later, and a loop that wakes on time: nothing to do.
        rescue.waiting(until: .now + .milliseconds(10))
        Thread.sleep(forTimeInterval: 0.005)
        rescue.woke()
        Thread.sleep(forTimeInterval: 0.02)
        #expect(rescue.rescues.load(ordering: .relaxed) == 1)
    }
}
