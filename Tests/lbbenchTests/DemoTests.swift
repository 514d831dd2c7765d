import Foundation
import RouteSetup
import Testing

@testable import Testbed
@testable import lbbench

@Suite(privileged, .serialized)
struct DemoTests {
    @Test func theDemoBalancesFailsOverBringsTheServerBackAndLeavesNothing() throws {
        var output = ""
        // The suites run side by side on two cores: a heartbeat margin, as in the farm tests.
        let summary = try Demo(
            heartbeatIntervalMilliseconds: 20, deadAfter: 5, phaseSeconds: 2, write: { output += $0 }, live: false
        ).run()
        #expect(Set(summary.answered.keys) == [1, 2, 3], "\(output)")
        #expect(summary.requests > 10000)
        #expect(summary.answered.values.reduce(0, +) > summary.requests * 95 / 100)
        #expect(summary.failoverMilliseconds.map { $0 < 1000 } == true, "\(output)")
        #expect(summary.brokenElsewhere == 0)
        #expect(summary.newOnReturned > 0, "\(output)")
        #expect(output.contains("Server 2 down"))
        #expect(!summary.testbedID.isEmpty)
        #expect(!NetworkNamespace.all().contains { $0.hasPrefix("\(VirtualNetwork.namePrefix)\(summary.testbedID)-") })
    }
}
