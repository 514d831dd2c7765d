import Foundation
import RouteSetup
import TapEngine
import Testing

@testable import Testbed
@testable import lbbench

/// Networks nobody told us about, and the keepalived reference of the failover benchmark.
@Suite(privileged, .serialized)
struct ScenarioTests {
    static func variant(_ name: String) -> ScenariosCommand.Variant {
        ScenariosCommand.variants.first { $0.name == name }!
    }

    @Test func directedWorksBehindARouterAndFloodCannotWorkWithoutFlooding() {
        let routed = ScenariosCommand.check(Self.variant("clients behind a router"), delivery: .fixed(.directed))
        #expect(routed.0, "\(routed.1)")
        let noFlood = ScenariosCommand.check(
            Self.variant("bridge, unknown-unicast flooding off"), delivery: .fixed(.flood))
        #expect(!noFlood.0, "\(noFlood.1)")
    }

    /// A strict virtual switch (no flooding, source MACs locked per port): flood and directed lose every request,
    /// relay serves each once, before and after a failover; auto picks relay there.
    @Test func onAStrictVirtualSwitchOnlyRelayServes() {
        let strict = Self.variant("strict virtual switch (no flooding, source MAC locked per port)")
        for delivery in [DeliverySetting.fixed(.flood), .fixed(.directed)] {
            let result = ScenariosCommand.check(strict, delivery: delivery)
            #expect(!result.0, "\(delivery): \(result.1)")
        }
        for delivery in [DeliverySetting.fixed(.relay), .auto] {
            let result = ScenariosCommand.check(strict, delivery: delivery)
            #expect(result.0, "\(delivery): \(result.1)")
        }
    }

    @Test func keepalivedHandsTheVIPToTheBackupWhenTheMasterDies() throws {
        let pair = try KeepalivedPair(advertisementSeconds: 0.05)
        defer { pair.stop() }
        #expect(pair.waitUntilServing(seconds: 5))
        let trial = try pair.trial(
            of: 1, .link, system: .keepalivedFast, udp: 8, tcp: 0, intervalMilliseconds: 5, before: 0.3)
        #expect(trial.affectedFlows == 8)
        #expect(trial.recoveryMilliseconds.map { $0 > 100 && $0 < 1000 } == true, "\(trial)")  // 3 x 50 ms + skew
    }
}

/// `lbbench failover --vip` as on a client of real hosts: the farm is a testbed here, the failure a command.
@Suite(privileged, .serialized)
struct RealHostFailoverTests {
    /// The command takes a second before it cuts the cable (as ssh to a busy host can): that second is not the
    /// farm's recovery, whose clients were answered throughout it.
    @Test func aFailCommandIsTimedAndTheServerThatStoppedIsFound() throws {
        let farm = try VirtualFarm(VirtualFarm.Options(heartbeatIntervalMilliseconds: 20, deadAfter: 5))
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]))
        let command = "sleep 1; ip netns exec \(farm.testbed.switchNamespace.name) ip link set s2 down"
        let result: Result<FailoverReport, Error> = try farm.testbed.clients[0].namespace.run {
            () throws(NetlinkError) in
            Result {
                try RealHostFailover(
                    vip: farm.vip, interface: "eth0", failCommand: command, seconds: 5, udpFlows: 16, tcpFlows: 4,
                    intervalMilliseconds: 5, progress: { _ in }
                ).run()
            }
        }
        let report = try result.get()
        #expect(report.victim == 2)
        // Detection is 100 ms (20 ms x 5); counted from the command's start, recovery would be 1.1 s or more.
        #expect(report.trials.first?.recoveryMilliseconds.map { $0 < 800 } == true, "\(report.trials)")
        #expect(report.trials.first?.tcpResetUnaffected == 0)
    }
}

/// `lbbench pps --vip` as on a client of real hosts.
@Suite(privileged, .serialized)
struct RealHostThroughputTests {
    @Test func theSearchCountsAnswersPerServer() throws {
        let farm = try VirtualFarm(VirtualFarm.Options(heartbeatIntervalMilliseconds: 20, deadAfter: 5))
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]))
        let result: Result<RealHostThroughput.Report, Error> = try farm.testbed.clients[0].namespace.run {
            () throws(NetlinkError) in
            Result {
                try RealHostThroughput(
                    vip: farm.vip, interface: "eth0", frameSizes: [64, 512], seconds: 0.5, repetitions: 1, steps: 2,
                    flows: 32, progress: { _ in }
                ).run()
            }
        }
        let report = try result.get()
        #expect(report.searches.map(\.frameBytes) == [64, 512])
        for search in report.searches {
            #expect(search.overloadAnswered > 1000, "\(search)")
            #expect(Set(search.trials[0].answeredPerServer.keys) == ["1", "2", "3"])
            #expect(search.zeroLossRate == 0 || search.trials.contains { $0.passed })
        }
    }
}
