import TapEngine
import Testing

@testable import lbnode

/// The logic of `delivery: auto` without a network: which running node's mode a joiner adopts, how the nodes' verdicts
/// combine, and what the running farm's delivery check reports.
struct AutoDeliveryTests {
    typealias Running = FarmProbe.Report.RunningNode

    @Test func aJoinerTakesTheLeadersModeElseTheLowestIDs() {
        let leader = AutoDelivery.adopt([
            Running(node: 1, delivery: .flood, leader: false), Running(node: 2, delivery: .relay, leader: true),
        ])
        #expect(leader?.delivery == .relay)
        #expect(leader?.reason.contains("node 2, the leader,") == true)
        let lowest = AutoDelivery.adopt([
            Running(node: 3, delivery: .relay, leader: false), Running(node: 2, delivery: .directed, leader: false),
        ])
        #expect(lowest?.delivery == .directed)
        #expect(AutoDelivery.adopt([Running(node: 2, delivery: nil, leader: true)]) == nil)  // an older node
    }

    static func probe() throws -> FarmProbe {
        let config = try NodeControllerTests.config(delivery: "auto")
        return FarmProbe(config: config, keys: [], requireEveryPeer: false)
    }

    static func report(_ delivery: Delivery?) -> FarmProbe.Report {
        FarmProbe.Report(farm: "web", node: 1, checks: [], delivery: delivery, vipInUse: false, explanation: "seen")
    }

    /// A pair that only relay serves rules the cheaper modes out for the whole farm; a cheaper verdict changes nothing.
    @Test func theFarmTakesTheCostliestVerdict() throws {
        let probe = try Self.probe()
        var report = Self.report(.flood)
        probe.combine(&report, verdicts: [2: .flood, 3: .relay])
        #expect(report.delivery == .relay)
        #expect(report.explanation.contains("node 3 found relay works"))
        var costly = Self.report(.directed)
        probe.combine(&costly, verdicts: [2: .flood, 3: .directed])
        #expect(costly.delivery == .directed && costly.explanation == "seen")
        var broken = Self.report(.flood)
        probe.combine(&broken, verdicts: [2: nil])
        #expect(broken.delivery == nil)
    }

    static let window = DeliveryWatch.windowMilliseconds

    @Test func theWatchJudgesAPeerAfterAWindowAndReportsFloodingThatStopped() {
        var watch = DeliveryWatch(delivery: .flood)
        let live: Set<UInt16> = [2, 3]
        // Node 3 never sends: not judged before it has been alive for a window.
        #expect(watch.evaluate(now: 0, live: live, lastSeen: [.flood: [2: 0]]) == nil)
        #expect(watch.evaluate(now: Self.window - 1, live: live, lastSeen: [.flood: [2: Self.window - 1]]) == nil)
        let failing = watch.evaluate(now: Self.window, live: live, lastSeen: [.flood: [2: Self.window]])
        #expect(failing?.contains("FAILING: probe frames from node 3 stopped arriving") == true, "\(failing ?? "")")
        #expect(watch.problem != nil)
        // Logged once; then node 3's frames come again.
        #expect(watch.evaluate(now: Self.window + 10, live: live, lastSeen: [.flood: [2: Self.window]]) == nil)
        let back = watch.evaluate(
            now: Self.window + 20, live: live, lastSeen: [.flood: [2: Self.window, 3: Self.window + 20]])
        #expect(back == "delivery check passes again" && watch.problem == nil)
    }

    @Test func directedNeedsFloodingOrALearnedSecondMACAndRelayNeedsNeither() {
        var directed = DeliveryWatch(delivery: .directed)
        _ = directed.evaluate(now: 0, live: [2], lastSeen: [:])
        let learned: [ProbeFrames.Kind: [UInt16: Int]] = [.forged: [2: Self.window], .learned: [2: Self.window]]
        #expect(directed.evaluate(now: Self.window, live: [2], lastSeen: learned) == nil && directed.problem == nil)
        #expect(directed.cheaper == nil)
        _ = directed.evaluate(now: Self.window, live: [2], lastSeen: [.forged: [2: Self.window]])
        #expect(directed.problem != nil)

        var relay = DeliveryWatch(delivery: .relay)
        _ = relay.evaluate(now: 0, live: [2], lastSeen: [:])
        #expect(relay.evaluate(now: Self.window, live: [2], lastSeen: [:]) == nil && relay.problem == nil)
        _ = relay.evaluate(now: Self.window, live: [2], lastSeen: learned)
        #expect(relay.cheaper == .directed)
        _ = relay.evaluate(now: Self.window, live: [2], lastSeen: [.flood: [2: Self.window]])
        #expect(relay.cheaper == .flood)
    }
}
