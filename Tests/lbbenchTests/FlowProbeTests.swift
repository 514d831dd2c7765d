import Foundation
import RouteSetup
import TapEngine
import Testing

@testable import Testbed
@testable import lbbench

/// The failover probe on a stable farm: what it records must be exact before it can measure a failover.
@Suite(privileged, .serialized)
struct FlowProbeTests {
    @Test func onAStableFarmEveryRequestIsAnsweredOnceAndNothingIsReset() throws {
        // The suites run side by side on two cores: the farm tests' heartbeat margin (a false failover would move flows).
        let farm = try VirtualFarm(VirtualFarm.Options(heartbeatIntervalMilliseconds: 20, deadAfter: 5))
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]), "\(farm.log(1))")
        let probe = try farm.openProbe(udp: 32, tcp: 16, intervalMilliseconds: 5)
        probe.start()
        Thread.sleep(forTimeInterval: 1)
        probe.stop()
        let trial = FailoverTrial(mode: .kill, records: probe.records, victim: 9, failedAt: probe.now)
        print(trial)
        #expect(trial.requestsSent > 48 * 150)
        #expect(trial.requestsLost == 0)
        #expect(trial.duplicates == 0)
        #expect(trial.tcpResetUnaffected == 0)
        // Every flow has one server, and the three share them.
        let servers = probe.records.map { Set($0.replies.map(\.server)) }
        #expect(servers.allSatisfy { $0.count == 1 })
        #expect(Set(servers.flatMap { $0 }) == [1, 2, 3])
    }
}
