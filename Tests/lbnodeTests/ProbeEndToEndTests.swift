import Foundation
import RouteSetup
import TapEngine
import Testing

@testable import Testbed
@testable import lbnode

/// `lbnode probe` on each kind of network the testbed builds: every node's verdicts and the delivery mode it names.
@Suite(privileged, .serialized)
struct ProbeEndToEndTests {
    /// Probes a three-server farm (no lbnode running) on `testbed` from `nodes` (default: all); their reports.
    static func probe(
        _ testbed: VirtualNetwork.Description, nodes: [Int]? = nil, startGap: Double = 0, peerWait: Int? = nil,
        before: (VirtualFarm) throws -> Void = { _ in }
    ) throws -> [FarmProbe.Report] {
        let farm = try VirtualFarm(VirtualFarm.Options(testbed: testbed, startNodes: []))
        defer { farm.stop() }
        try before(farm)
        return farm.probe(nodes: nodes, startGap: startGap, peerWait: peerWait).sorted { $0.key < $1.key }.map {
            number, run in
            let output = run.output
            let json = output.drop { $0 != "{" }
            let report = try? JSONDecoder().decode(FarmProbe.Report.self, from: Data(json.utf8))
            #expect(report != nil, "node \(number): \(output)")
            return report ?? FarmProbe.Report(farm: "", node: 0, checks: [], vipInUse: true, explanation: output)
        }
    }

    static func passed(_ report: FarmProbe.Report) -> [String: Bool] {
        Dictionary(uniqueKeysWithValues: report.checks.map { ($0.name, $0.passed) })
    }

    @Test func aLearningBridgeFloodsSoFloodIsNamed() throws {
        for report in try Self.probe(.init(servers: 3, clients: 1)) {
            #expect(report.delivery == .flood, "\(report)")
            #expect(Self.passed(report).values.allSatisfy { $0 }, "\(report)")
        }
    }

    @Test func aBridgeThatDoesNotFloodGetsDirected() throws {
        for report in try Self.probe(.init(servers: 3, clients: 1, unknownUnicastFlooding: false)) {
            #expect(report.delivery == .directed, "\(report)")
            let passed = Self.passed(report)
            #expect(passed["unknown unicast flooded"] == false && passed["foreign source MAC learned"] == true)
        }
    }

    @Test func aStrictVirtualSwitchGetsRelay() throws {
        for report in try Self.probe(.init(servers: 3, clients: 1, unknownUnicastFlooding: false, portSecurity: true)) {
            #expect(report.delivery == .relay, "\(report)")
            let passed = Self.passed(report)
            #expect(passed["heartbeats both ways"] == true && passed["foreign source MAC accepted"] == false)
            #expect(passed["VIP free"] == true && passed["MTUs agree"] == true)
        }
    }

    @Test func aVIPInUseAndASilentNodeAreReported() throws {
        // A client holds the VIP; node 3 does not take part (the others wait 2 s for it to start).
        let reports = try Self.probe(.init(servers: 3, clients: 1), nodes: [1, 2], peerWait: 2) { farm in
            try farm.testbed.clients[0].namespace.run { () throws(NetlinkError) in
                let socket = try NetlinkSocket()
                try socket.addAddress(IPPrefix("198.18.0.100/32")!, toLink: try socket.requireLink(named: "eth0").index)
            }
        }
        for report in reports {
            let passed = Self.passed(report)
            #expect(report.vipInUse && passed["VIP free"] == false, "\(report)")
            #expect(passed["heartbeats both ways"] == false && report.delivery == nil, "\(report)")
            #expect(report.checks.first?.detail.contains("3->\(report.node)") == true, "\(report)")
        }
    }

    /// A host that takes the VIP while the farm runs is found within the watch's interval, shown in the status and
    /// the metrics, logged as an error, and its leaving logged too.
    @Test func aVIPTakenByAnotherHostWhileTheFarmRunsIsReported() throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .fixed(.flood)
            $0.testbed.servers = 2
        }
        defer { farm.stop() }
        #expect(farm.waitForView(farm.fullView, nodes: [1, 2]), "\(farm.log(1))")
        let client = farm.testbed.clients[0]
        let holder = VIPWatch.text(client.macValue)
        func vipOnClient(_ add: Bool) throws {
            try client.namespace.run { () throws(NetlinkError) in
                let socket = try NetlinkSocket()
                let eth0 = try socket.requireLink(named: "eth0").index
                if add {
                    try socket.addAddress(IPPrefix("198.18.0.100/32")!, toLink: eth0)
                } else {
                    try socket.removeAddress(IPPrefix("198.18.0.100/32")!, fromLink: eth0)
                }
            }
        }
        try vipOnClient(true)
        let found = Date().addingTimeInterval(15)
        while Date() < found && !farm.log(1).contains("is also answered by \(holder)") {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(farm.log(1).contains("is also answered by \(holder), not a node of this farm"), "\(farm.log(1))")
        let status = try #require(try FarmEndToEndTests.status(farm, node: 1))
        #expect(status.vipAlsoAnsweredBy == [holder])
        try vipOnClient(false)
        let gone = Date().addingTimeInterval(15)
        while Date() < gone && !farm.log(1).contains("is answered by the farm alone again") {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(farm.log(1).contains("is answered by the farm alone again"), "\(farm.log(1))")
        #expect(!farm.log(2).contains("also answered by 02:"))  // the farm's own answers are never a conflict
    }

    @Test func anIPv6VIPInUseIsFoundByDuplicateAddressDetection() throws {
        let testbed = VirtualNetwork.Description(servers: 3, clients: 1, ipv6: true)
        let farm = try VirtualFarm(VirtualFarm.Options(testbed: testbed, vip: "2001:2::100", startNodes: []))
        defer { farm.stop() }
        let free = farm.probe(seconds: 1, nodes: [1], peerWait: 0)[1]?.output ?? ""
        #expect(free.contains("no answer to duplicate address detection for 2001:2::100"), "\(free)")
        try farm.testbed.clients[0].namespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            try socket.addAddress(IPPrefix("2001:2::100/128")!, toLink: try socket.requireLink(named: "eth0").index)
        }
        let taken = farm.probe(seconds: 1, nodes: [1], peerWait: 0)[1]?.output ?? ""
        #expect(taken.contains("2001:2::100 is in use by"), "\(taken)")
    }

    /// People start the probe on each server by hand: started 5 s apart, the three still agree on one mode.
    @Test func nodesStartedSecondsApartAgree() throws {
        let reports = try Self.probe(.init(servers: 3, clients: 1), startGap: 5)
        for report in reports {
            #expect(report.delivery == .flood, "\(report)")
            #expect(report.heard.count == 2, "\(report)")
        }
    }

    /// Alone, the probe blames nobody's switch: it says no peer is probing and exits 3.
    @Test func aNodeProbingAloneSaysNoPeerIsProbing() throws {
        let farm = try VirtualFarm(VirtualFarm.Options(testbed: .init(servers: 3, clients: 1), startNodes: []))
        defer { farm.stop() }
        let run = try #require(farm.probe(seconds: 1, nodes: [1], peerWait: 1)[1])
        #expect(run.status == 3, "\(run.output)")
        let report = try JSONDecoder().decode(FarmProbe.Report.self, from: Data(run.output.drop { $0 != "{" }.utf8))
        #expect(report.explanation.contains("no peer is probing"), "\(report)")
        #expect(!report.checks.contains { $0.detail.contains("dropped by the switch") }, "\(report)")
    }
}
