import Foundation
import TapEngine
import Testing

@testable import Testbed
@testable import lbnode

/// `delivery: auto` on each kind of network the testbed builds: the nodes probe together at start and pick the
/// cheapest mode that works there, serve every request exactly once, fail over, and a node that restarts joins in the
/// running farm's mode; a network that changes under the farm is reported.
@Suite(privileged, .serialized)
struct AutoDeliveryEndToEndTests {
    static func status(_ farm: VirtualFarm, _ node: Int) -> NodeStatus? {
        (try? farm.control(["status", "--json"], node: node)).flatMap {
            try? JSONDecoder().decode(NodeStatus.self, from: Data($0.utf8))
        }
    }

    /// Starts a three-node `auto` farm on `testbed`; checks that every node picked `expected` and serves, that the
    /// farm survives the leader's death, and that the leader, restarted, joins in the same mode.
    static func servesAndFailsOver(on testbed: VirtualNetwork.Description, expected: String) throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .auto
            $0.testbed = testbed
        }
        defer { farm.stop() }
        #expect(farm.waitForView(farm.fullView, nodes: [1, 2, 3], seconds: 15), "\(farm.log(1))")
        for node in [1, 2, 3] {
            let status = Self.status(farm, node)
            #expect(status?.delivery == expected && status?.deliveryAuto == true, "node \(node): \(farm.log(node))")
            // Probed with the others, or (its probe over last) joined in the mode of a node that already runs.
            #expect(
                status?.deliveryReason.map { $0.hasPrefix("probed with nodes") || $0.contains("runs the farm in") }
                    == true,
                "\(status?.deliveryReason ?? "none")")
            #expect(status?.deliveryDisagreements == [])
        }
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [1, 2, 3])

        farm.signal(1, SIGKILL)
        #expect(farm.waitForView("{2:100, 3:100}", nodes: [2, 3], seconds: 2))
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [2, 3])

        // Node 1 comes back: it hears the running nodes' heartbeats and takes their mode, without a probe of its own.
        farm.waitForExit(1)
        try farm.start(1)
        #expect(farm.waitForView(farm.fullView, nodes: [1, 2, 3], seconds: 15), "\(farm.log(1))")
        #expect(farm.log(1).contains("runs the farm in \(expected) delivery"), "\(farm.log(1))")
        #expect(Self.status(farm, 1)?.delivery == expected)
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [1, 2, 3])
    }

    @Test func aLearningBridgeGetsFlood() throws {
        try Self.servesAndFailsOver(on: .init(servers: 3, clients: 1), expected: "flood")
    }

    @Test func aBridgeThatDoesNotFloodGetsDirected() throws {
        try Self.servesAndFailsOver(
            on: .init(servers: 3, clients: 1, unknownUnicastFlooding: false), expected: "directed")
    }

    @Test func aStrictVirtualSwitchGetsRelay() throws {
        try Self.servesAndFailsOver(
            on: .init(servers: 3, clients: 1, unknownUnicastFlooding: false, portSecurity: true), expected: "relay")
    }

    @Test func clientsBehindARouterOnALearningBridgeGetFlood() throws {
        try Self.servesAndFailsOver(on: .init(servers: 3, clients: 1, routedClients: true), expected: "flood")
    }

    /// The switch stops flooding under a farm that picked flood: every node's delivery check says so, in its status
    /// and its log; flooding back, the check passes again.
    @Test func aSwitchThatStopsFloodingIsReported() throws {
        let farm = try FarmEndToEndTests.farm { $0.delivery = .auto }
        defer { farm.stop() }
        #expect(farm.waitForView(farm.fullView, nodes: [1, 2, 3], seconds: 15), "\(farm.log(1))")
        #expect(Self.status(farm, 2)?.delivery == "flood")
        Thread.sleep(forTimeInterval: Double(DeliveryWatch.windowMilliseconds) / 1000 + 1)
        #expect(Self.status(farm, 2)?.deliveryProblem == nil, "\(farm.log(2))")

        try farm.testbed.setUnknownUnicastFlooding(false)
        let switched = Date()
        let deadline = switched.addingTimeInterval(Double(DeliveryWatch.windowMilliseconds) / 1000 + 4)
        while Date() < deadline && [1, 2, 3].contains(where: { Self.status(farm, $0)?.deliveryProblem == nil }) {
            Thread.sleep(forTimeInterval: 0.2)
        }
        for node in [1, 2, 3] {
            let problem = Self.status(farm, node)?.deliveryProblem
            // A late report says when the switch changed, so its log shows whether the node was slow or restarted
            // its watch (a view change, a data path re-opened).
            let after = Date().timeIntervalSince(switched)
            let log = farm.log(node).suffix(3000)
            #expect(
                problem?.contains("no longer floods unknown unicast") == true,
                "node \(node), \(after) s after the switch stopped flooding: \(problem ?? "none"); its log: \(log)")
            #expect(farm.log(node).contains("delivery check FAILING"))
        }

        try farm.testbed.setUnknownUnicastFlooding(true)
        Thread.sleep(forTimeInterval: 2.5)
        #expect(Self.status(farm, 1)?.deliveryProblem == nil)
        #expect(farm.log(1).contains("delivery check passes again"))
    }

    /// A node alone cannot probe: the first time it waits (and says why), and after the farm has run it takes the mode
    /// its last probe picked.
    @Test func aNodeAloneWaitsThenRemembersTheFarmsMode() throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .auto
            $0.testbed = .init(servers: 3, clients: 1, unknownUnicastFlooding: false)
            $0.startNodes = [1]
        }
        defer { farm.stop() }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && !farm.log(1).contains("no peer answered the probe yet") {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(farm.log(1).contains("waiting for one (a node alone cannot tell"), "\(farm.log(1))")
        #expect(!farm.log(1).contains("setup:"))  // nothing set up while it waits

        try farm.start(2)
        try farm.start(3)
        #expect(farm.waitForView(farm.fullView, nodes: [1, 2, 3], seconds: 15), "\(farm.log(1))")
        #expect(Self.status(farm, 1)?.delivery == "directed")

        for node in [1, 2, 3] { farm.signal(node, SIGTERM) }
        for node in [1, 2, 3] { farm.waitForExit(node) }
        try farm.start(1)
        let restarted = Date().addingTimeInterval(8)
        while Date() < restarted && !farm.log(1).contains("which this node's last probe picked") {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(
            farm.log(1).contains(
                "delivery auto: directed (no peer answered the probe; directed, which this node's last"),
            "\(farm.log(1))")
    }

    /// A node alone with no mode remembered (its farm's first start, or its memory lost) waits a bounded time for a
    /// peer, then serves in relay delivery, which works on any switch; the peers that start later join in it.
    @Test func aNodeAloneTakesRelayAfterTheLoneWait() throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .auto
            $0.testbed = .init(servers: 2, clients: 1, unknownUnicastFlooding: false)
            $0.startNodes = [1]
            $0.extraArguments = [1: ["--lone-wait", "2"]]
        }
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100}", nodes: [1], seconds: 10), "\(farm.log(1))")
        #expect(
            farm.log(1).contains("delivery auto: relay (no peer answered the probe for 2 s and no mode was remembered"),
            "\(farm.log(1))")
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 200), count: 200, by: [1])
        try farm.start(2)
        #expect(farm.waitForView(farm.fullView, nodes: [1, 2], seconds: 10), "\(farm.log(2))")
        #expect(farm.log(2).contains("runs the farm in relay delivery"), "\(farm.log(2))")
    }
}
