import Testing

@testable import Testbed

/// A flow's silence is the farm's only while the flow has a request out: the probe's own pauses are not the farm's.
struct WindowTallyTests {
    static let millisecond: Int64 = 1_000_000

    /// A UDP flow that sends every 10 ms; `replies` are (sequence, arrival in ms) from server 2.
    static func tally(sendTimes: [Int64], replies: [(UInt32, Int64)], windowMilliseconds: Int64) -> WindowTally {
        var record = FlowProbe.Record(isTCP: false)
        record.replies = replies.map { (time: $0.1 * millisecond, sequence: $0.0, server: 2) }
        return WindowTally([record], sendTimes: sendTimes, window: 0...windowMilliseconds * millisecond)
    }

    @Test func aProbeThatSentNothingForAWhileIsNoSilenceOfTheFarms() {
        // Rounds every 10 ms, then the sender pauses 150 ms; every reply comes 1 ms after its request.
        let sendTimes =
            (0..<10).map { Int64($0) * 10 * Self.millisecond }
            + (0..<5).map { (250 + Int64($0) * 10) * Self.millisecond }
        let replies = sendTimes.indices.map { (UInt32($0), sendTimes[$0] / Self.millisecond + 1) }
        let tally = Self.tally(sendTimes: sendTimes, replies: replies, windowMilliseconds: 300)
        #expect(abs(tally.longestSilenceMilliseconds - 1) < 0.001, "\(tally)")
        #expect(tally.lost == 0)
    }

    @Test func aFarmThatHoldsRepliesBackIsSilentFromTheFirstRequestItOwes() {
        // Requests 5...14 (sent at 50...140 ms) are all answered at 160 ms: the flow waited from 50 ms.
        let sendTimes = (0..<20).map { Int64($0) * 10 * Self.millisecond }
        var replies: [(UInt32, Int64)] = (0..<5).map { (UInt32($0), Int64($0) * 10 + 1) }
        replies += (5..<15).map { (UInt32($0), 160) }
        replies += (15..<20).map { (UInt32($0), Int64($0) * 10 + 1) }
        let tally = Self.tally(sendTimes: sendTimes, replies: replies, windowMilliseconds: 200)
        #expect(abs(tally.longestSilenceMilliseconds - 110) < 0.001, "\(tally)")
        let silence = WindowTally.Silence(milliseconds: 110, endedAt: 160 * Self.millisecond, server: 2)
        #expect(tally.silences == [silence])
        #expect(tally.silences(over: 100, since: 0).hasPrefix("1 of 1 flows, ended by replies of node 2"))
    }

    @Test func aLostRequestAndAnUnansweredEndCountFromTheRequest() {
        // Request 5 is lost: the wait runs from its send (50 ms) to the reply to 6 (61 ms). Requests 10...14 are
        // never answered: the wait runs from 100 ms to the window's end (150 ms).
        let sendTimes = (0..<15).map { Int64($0) * 10 * Self.millisecond }
        let replies = (0..<10).filter { $0 != 5 }.map { (UInt32($0), Int64($0) * 10 + 1) }
        let tally = Self.tally(sendTimes: sendTimes, replies: replies, windowMilliseconds: 150)
        let silence = WindowTally.Silence(milliseconds: 50, endedAt: 150 * Self.millisecond, server: 0)
        #expect(tally.silences == [silence], "\(tally)")
        #expect(tally.lost == 6)
    }
}

/// A connection the restarts cost is reported with when and why it ended, against the restart before it.
struct RestartResetReportTests {
    @Test func aResetConnectionIsPlacedAfterItsRestart() {
        var reset = FlowProbe.Record(isTCP: true)
        reset.replies = [(time: 900_000_000, sequence: 1, server: 2)]
        reset.resetAt = 2_350_000_000
        reset.resetReason = "Connection reset by peer"
        let report = FarmChaos.resets(
            in: [FlowProbe.Record(isTCP: false), reset, FlowProbe.Record(isTCP: true)],
            restarts: [1_000_000_000, 2_000_000_000, 3_000_000_000])
        #expect(
            report == [
                "flow 1 (last answered by node 2) ended at 2350 ms, 350 ms after restart 2's SIGTERM: "
                    + "Connection reset by peer"
            ])
    }
}

/// The chaos scenarios and the benchmarks count view changes in the nodes' logs: only a view line is one. A slow
/// turn's warning that speaks of "a view change" counted as one, and failed an ICMP flood that changed no view.
struct ViewChangeLineTests {
    @Test func onlyAViewLineIsAViewChange() {
        #expect(
            VirtualFarm.isViewChange(
                "2026-12-07T20:59:32.641Z info lbnode[vfarm/1]: view {1:100, 2:100, 3:100} -> {1:100, 3:100}"))
        #expect(
            !VirtualFarm.isViewChange(
                "2026-12-07T21:41:26.960Z warning lbnode[vfarm/1]: a turn of the heartbeat loop took 8.5 ms, over half "
                    + "the 16-ms failover time, and no heartbeat left meanwhile: ...; the loop's own work outside a "
                    + "view change, or the kernel's on its behalf"))
        #expect(!VirtualFarm.isViewChange("2026-12-07T21:41:26.960Z notice lbnode[vfarm/2]: views agree"))
    }
}
