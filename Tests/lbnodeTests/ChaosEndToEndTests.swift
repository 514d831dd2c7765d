import Foundation
import TapEngine
import Testing

@testable import Testbed
@testable import lbnode

/// Hostile and abnormal conditions on a three-node farm while a client's requests flow (the scenarios of
/// `lbbench chaos`, with 5-s floods instead of 30 and 10-s one-way losses instead of a minute). Heartbeats every 20 ms,
/// dead after 5 (100 ms): the suites share two cores, in debug builds. Each scenario gets a fresh farm.
@Suite(privileged, .serialized)
struct ChaosEndToEndTests {
    static func run(_ scenario: ChaosScenario, delivery: Delivery = .directed) throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .fixed(delivery)
            scenario.shape(&$0)
            // Restarts meet a farm past its joins' handover window: one of 5 s is past sooner than the default 30 s.
            if scenario == .restartsUnderWrk { $0.handoverSeconds = 5 }
        }
        defer { farm.stop() }
        #expect(farm.waitForView(farm.startedView, nodes: farm.startedNodes), "\(farm.log(1))")
        var chaos = FarmChaos(farm: farm, floodSeconds: 5, recoveryBudgetMilliseconds: 800, longFaultSeconds: 10)
        // The flood shares this machine's two cores and one kernel with three debug lbnodes and the client: its
        // backlog can drop a few requests with the flood (2 and 17 of 35,000 in two CI runs, 0 view changes). Since
        // the kernel delivers datagrams itself, in the softirq the flood keeps busy, the full suite's ICMP flood lost
        // 54 and 81 (0.15 and 0.23 %, 0 view changes) in two of four CI runs, none in six runs alone. The allowance
        // still fails a farm that flaps under the flood (hundreds lost, as before the heartbeat loop's fixes);
        // `lbbench chaos` on the release build holds 0.
        chaos.floodLossAllowance = 0.005
        // A flood meets a farm that runs: once no view has changed for 2 s (the joins' last moves done), not while
        // the debug builds still settle from their start on two shared cores.
        if scenario.isFlood { #expect(chaos.waitUntilSteady(seconds: 30), "the farm did not settle\n\(farm.logs)") }
        let outcome = try chaos.run(scenario)
        print("chaos \(scenario) (\(delivery)): \(outcome.figures.sorted { $0.key < $1.key }) \(outcome.tally)")
        #expect(
            outcome.passed,
            "\(scenario) (\(delivery)): \(outcome.failures) \(outcome.figures) \(outcome.tally)\n\(farm.logs)"
        )
    }

    @Test func junkOnTheHeartbeatPortChangesNothing() throws { try Self.run(.junkFlood) }

    /// Node 2's lbnode stopped for 10 to 40 ms, every 50 to 250 ms, for 15 s, at 10 ms × 3 (the shortest heartbeats
    /// these suites run): a stall reaches past the farm's 30-ms deadline. The farm learns from the first stalls how
    /// late its heartbeats come and lengthens its deadline: after 5 s, no view changes and nothing is lost.
    @Test func aNodeThatStallsAgainAndAgainLeavesTheFarmSteady() throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .fixed(.flood)
            $0.heartbeatIntervalMilliseconds = 10
            $0.deadAfter = 3
        }
        defer { farm.stop() }
        let chaos = FarmChaos(farm: farm, floodSeconds: 5, recoveryBudgetMilliseconds: 800, longFaultSeconds: 15)
        #expect(
            chaos.waitUntilSteady(seconds: 60) && farm.waitForView(farm.fullView, nodes: [1, 2, 3], seconds: 5),
            "the farm did not settle after its start\n\(farm.logs)")
        let outcome = try chaos.run(.stalls)
        print("chaos stalls at 10 ms x 3: \(outcome.figures.sorted { $0.key < $1.key }) \(outcome.tally)")
        #expect(outcome.passed, "\(outcome.failures) \(outcome.figures) \(outcome.tally)\n\(farm.logs)")
        #expect(outcome.figures["deadline_lengthenings", default: 0] > 0, "\(farm.logs)")
        // What an operator sees: a lengthened deadline, and the silence that asked for it.
        let status = try farm.control(["status", "--json"], node: 1)
        let fields = try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any] ?? [:]
        let silence = fields["longestPeerSilenceMilliseconds"] as? Int ?? 0
        #expect(silence > 20 && fields["deadAfterMilliseconds"] as? Int ?? 0 >= min(100, 2 * silence), "\(status)")
        let text = try farm.control(["status"], node: 1)
        #expect(text.contains("ms of silence (peers heard late: up to \(silence) ms of silence in 30 s)"), "\(text)")
    }

    @Test func forgedHeartbeatsFromASpoofedPeerChangeNothing() throws { try Self.run(.forgedFlood, delivery: .flood) }

    /// A flood spoofing a dead peer (whose incarnation is not pinned) at full speed changes no view among the live.
    @Test func aFloodSpoofingADeadPeerChangesNothing() throws { try Self.run(.deadPeerFlood, delivery: .flood) }

    /// Frames of other EtherTypes (the nodes' probe EtherType among them) at full speed lose no request.
    @Test(arguments: [Delivery.flood, .directed])
    func anEtherTypeFloodLosesNothing(delivery: Delivery) throws { try Self.run(.etherTypeFlood, delivery: delivery) }

    /// ICMP at full speed to the VIP and, from the witness's address, to a node lose no request and change no view.
    @Test(arguments: [Delivery.flood, .directed])
    func anICMPFloodWithAWitnessLosesNothing(delivery: Delivery) throws { try Self.run(.icmpFlood, delivery: delivery) }

    /// The same flood in flood delivery (every server receives it) at 10 ms × 3, the shortest heartbeats these suites
    /// run (three debug builds share two cores with the flood; the release build holds the default 4 ms × 4 under
    /// `lbbench chaos`): every node sees its host drop received frames, gives silent peers 100 ms and says so, and no
    /// view changes. It guards what a view change costs the heartbeat loop too: while a state change cost a debug node
    /// 18 ms, this farm flapped on its own swaps and never settled.
    @Test func anICMPFloodAtShortHeartbeatsChangesNoView() throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .fixed(.flood)
            $0.heartbeatIntervalMilliseconds = 10
            $0.deadAfter = 3
            ChaosScenario.icmpFlood.shape(&$0)
        }
        defer { farm.stop() }
        let chaos = FarmChaos(farm: farm, floodSeconds: 5, recoveryBudgetMilliseconds: 800)
        // A farm's start is a burst of view changes on three debug builds and two cores: the flood comes once the
        // farm has been steady for 2 s.
        let settled = chaos.waitUntilSteady(seconds: 60)
        #expect(
            settled && farm.waitForView(farm.startedView, nodes: farm.startedNodes, seconds: 5),
            "the farm did not settle after its start\n\(farm.logs)")
        let outcome = try chaos.run(.icmpFlood)
        print("chaos icmp flood at 10 ms x 3: \(outcome.figures.sorted { $0.key < $1.key }) \(outcome.tally)")
        let logs = farm.testbed.servers.map { farm.log($0.number) }
        #expect(outcome.figures["view_changes"] == 0 && outcome.tally.duplicates == 0, "\(outcome.failures)\n\(logs)")
        #expect(logs.allSatisfy { $0.contains("this host drops received frames") }, "\(logs)")
    }

    @Test func aFrozenDirectorAnswersNothingTwice() throws { try Self.run(.freezeDirector) }

    @Test func aFrozenNodeInFloodModeAnswersNothingTwice() throws { try Self.run(.freezeOther, delivery: .flood) }

    @Test func aPartitionLeavesExactlyOneSideServing() throws { try Self.run(.partition, delivery: .flood) }

    @Test func aPartitionInDirectedModeToo() throws { try Self.run(.partition) }

    @Test func aNodeCutOffFromItsPeerAndTheWitnessFencesItself() throws { try Self.run(.isolated, delivery: .flood) }

    @Test func aDeletedTapIsRecreated() throws { try Self.run(.tapDeleted, delivery: .flood) }

    @Test func aRecreatedNICIsReopened() throws { try Self.run(.nicRecreated) }

    @Test func aNICDownAndUpFailsOverAndBack() throws { try Self.run(.nicDownUp, delivery: .flood) }

    @Test func aSYNFloodFlushesNoConnectionBeforeADrain() throws { try Self.run(.synFlood, delivery: .flood) }

    /// One-way heartbeat loss, each direction in turn, on three nodes and on two: one node of the pair stands down
    /// (the higher ID when a third node hears both, else the node not heard), no request is answered twice, and the
    /// farm is one again once the loss ends.
    @Test(arguments: [Delivery.flood, .directed])
    func oneWayHeartbeatLossAnswersNothingTwice(delivery: Delivery) throws { try Self.run(.oneWay, delivery: delivery) }

    @Test(arguments: [Delivery.flood, .directed])
    func oneWayHeartbeatLossBetweenTwoNodes(delivery: Delivery) throws { try Self.run(.oneWayPair, delivery: delivery) }

    /// Two nodes that stop hearing each other while the third hears both: the higher ID stands down, the lower serves
    /// on, nothing is answered twice.
    @Test(arguments: [Delivery.flood, .directed])
    func twoNodesDeafToEachOtherAnswerNothingTwice(delivery: Delivery) throws {
        try Self.run(.deafPair, delivery: delivery)
    }

    /// A capture of node 3's heartbeats, replayed after it was restarted and killed again, changes no view and loses
    /// nothing.
    @Test(arguments: [Delivery.flood, .directed])
    func aReplayFromAnEarlierIncarnationChangesNothing(delivery: Delivery) throws {
        try Self.run(.replay, delivery: delivery)
    }

    @Test(arguments: [Delivery.flood, .directed])
    func tenRestartsResetNoConnection(delivery: Delivery) throws { try Self.run(.restarts, delivery: delivery) }

    /// `systemctl restart` ten times under wrk through the VIP to nginx: not one socket error.
    @Test(arguments: [Delivery.flood, .directed])
    func tenRestartsUnderWrkCostNoRequest(delivery: Delivery) throws {
        try Self.run(.restartsUnderWrk, delivery: delivery)
    }

    /// A minute without node 2's cable (past the ARP cycle: its neighbour entries on the others fail and are probed
    /// again every few seconds), in a farm whose node 4 is configured on every node but was never on the network:
    /// after the first failover the survivors change no view, lose no request and leave no flow unanswered for 100 ms;
    /// then node 2 comes back and serves. Each delivery mode on the network it is for (flood on a learning switch,
    /// directed without flooding, relay on a strict virtual switch).
    @Test(arguments: [Delivery.flood, .directed, .relay])
    func aLongCutBesideANodeNeverStartedLeavesTheSurvivorsSteady(delivery: Delivery) throws {
        let farm = try FarmEndToEndTests.farm {
            $0.delivery = .fixed(delivery)
            $0.testbed = .init(
                servers: 4, clients: 1, unknownUnicastFlooding: delivery == .flood, portSecurity: delivery == .relay)
            $0.startNodes = [1, 2, 3]
            $0.absentServers = [4]
        }
        defer { farm.stop() }
        #expect(farm.waitForView(farm.startedView, nodes: farm.startedNodes), "\(farm.log(1))")
        let outcome = try FarmChaos(farm: farm, recoveryBudgetMilliseconds: 800, longFaultSeconds: 60).run(.longCut)
        print("long cut (\(delivery)): \(outcome.figures.sorted { $0.key < $1.key }) \(outcome.tally)")
        #expect(
            outcome.passed,
            "\(delivery): \(outcome.failures) \(outcome.figures)\n\(farm.logs)")
        #expect((outcome.figures["sent_while_away"] ?? 0) > 60 * 50 * 50, "\(outcome.figures)")
        // Node 4 was never heard: every survivor lists it, and sends it one heartbeat a second.
        let status = try #require(try FarmEndToEndTests.status(farm, node: 1))
        let absent = try #require(status.members.first { $0.id == 4 })
        #expect(absent.state == "never heard" && absent.away, "\(absent)")
        #expect(absent.heartbeatsSent < 200, "\(absent)")
    }
}
