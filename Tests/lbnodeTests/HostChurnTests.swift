import Foundation
import RouteSetup
import Synchronization
import Testing

@testable import Testbed

/// A farm whose host creates and deletes interfaces: the kernel's RTNL lock is host-wide, and deleting a namespace
/// of many interfaces holds it for seconds (the namespace's devices are unregistered in one batch). The heartbeat
/// loop must not wait for it: at the suites' 20 ms x 5 a wait of 100 ms fences a node as stalled, and two nodes
/// fenced at once reset each other's connections.
@Suite(privileged, .serialized)
struct HostChurnTests {
    @Test func theFarmStaysSteadyWhileTheHostHoldsRTNLForSeconds() throws {
        let farm = try FarmEndToEndTests.farm()
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]), "\(farm.logs)")
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [1, 2, 3])
        let logged = (1...3).map { farm.log($0).count }

        let name = "vfchurn\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let bridges = (1...150).map { "link add b\($0) type bridge" }.joined(separator: "\n")
        let made = try runToEnd(
            in: nil, "/bin/sh", ["-c", "ip netns add \(name) && printf '%s\\n' '\(bridges)' | ip -n \(name) -batch -"],
            timeout: 60)
        defer { _ = try? runToEnd(in: nil, "/bin/sh", ["-c", "ip netns del \(name) 2>/dev/null"], timeout: 60) }
        try #require(made.status == 0, "\(made.output)")
        // The kernel unregisters the namespace's devices a moment after `ip netns del` returns, holding RTNL
        // meanwhile: a netlink request waits for it, which is how long the farm had to stay steady.
        _ = try runToEnd(in: nil, "/bin/sh", ["-c", "ip netns del \(name)"], timeout: 60)
        // Meanwhile clients are served: exchanges of 100 requests, one after the other, until the lock is free.
        let done = Atomic(false)
        let exchanges = Mutex<[Result<[Int: [Int]], Error>]>([])
        // `exchange` reads only the testbed and the VIP, which nothing changes while the thread runs.
        let shared = UncheckedFarm(farm: farm)
        let clients = Thread {
            while !done.load(ordering: .relaxed) {
                let result = Result { try shared.farm.exchange(count: 100) }
                exchanges.withLock { $0.append(result) }
            }
        }
        clients.start()
        let netlink = try NetlinkSocket()
        var held = Duration.zero
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline && held < .milliseconds(300) {
            held = max(held, clock.measure { _ = try? netlink.link(named: "lo") })
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(held >= .milliseconds(300), "RTNL held at most \(held): the test no longer shows anything")
        done.store(true, ordering: .relaxed)
        while !clients.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let results = exchanges.withLock { $0 }
        #expect(!results.isEmpty, "no exchange ran while the lock was held")
        for result in results {
            FarmEndToEndTests.expectExactlyOnce(try result.get(), count: 100, by: [1, 2, 3])
        }

        for (index, number) in (1...3).enumerated() {
            let since = String(farm.log(number).dropFirst(logged[index]))
            let changed = since.split(separator: "\n").contains(where: VirtualFarm.isViewChange)
            #expect(!since.contains("stalled") && !changed, "node \(number): \(since)")
        }
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [1, 2, 3])
    }
}

private struct UncheckedFarm: @unchecked Sendable {
    let farm: VirtualFarm
}
