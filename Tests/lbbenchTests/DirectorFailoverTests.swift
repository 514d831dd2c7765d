import Foundation
import Testing

@testable import Testbed
@testable import lbbench

/// The director of a directed farm killed within the handover window of the farm's joins, as `lbbench failover
/// --victim 1` does. The next director did not know the connections opened since the joins, and sent those of a bucket
/// it had owned first to its own kernel, which reset them: 25 and 38 connections of the surviving servers in five
/// release trials. It now learns its own connections from its kernel, and sends the others to the bucket's owner.
@Suite(privileged, .serialized)
struct DirectorFailoverTests {
    @Test func theDirectorsDeathResetsNoConnectionOfAnotherServer() throws {
        var options = VirtualFarm.Options()
        options.heartbeatIntervalMilliseconds = 20
        options.deadAfter = 5
        options.delivery = .fixed(.directed)
        let farm = try VirtualFarm(options)
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]), "\(farm.logs)")
        let trial = try farm.trial(
            of: 1, .kill, system: .vipfarm, udp: 12, tcp: 36, intervalMilliseconds: 5, before: 0.5)
        #expect(trial.tcpResetUnaffected == 0, "\(trial)\n\(farm.logs)")
        #expect(trial.duplicates == 0, "\(trial)")
        #expect(trial.recoveryMilliseconds != nil, "\(trial)")
    }
}
