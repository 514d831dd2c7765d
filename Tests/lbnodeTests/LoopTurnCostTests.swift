import Testing

@testable import lbnode

/// The heartbeat loop's account of its own turns: what `lbnode status` shows, and the warning a long turn gets.
struct LoopTurnCostTests {
    static func turn(wall: Int, onCPU: Int? = nil, step: Int = 0, swap: Int = 0, swaps: Int = 0) -> LoopTurnCost.Turn {
        LoopTurnCost.Turn(
            wall: .milliseconds(wall), onCPU: .milliseconds(onCPU ?? wall), step: .milliseconds(step),
            swap: .milliseconds(swap), swaps: swaps)
    }

    @Test func stateChangesAreTheTurnsThatSwapped() {
        var cost = LoopTurnCost()
        #expect(cost.note(Self.turn(wall: 1), now: 0, failoverMilliseconds: 16) == nil)
        #expect(cost.note(Self.turn(wall: 5, step: 2, swap: 3, swaps: 1), now: 4, failoverMilliseconds: 16) == nil)
        #expect(cost.note(Self.turn(wall: 2, step: 1, swap: 1, swaps: 1), now: 8, failoverMilliseconds: 16) == nil)
        #expect(
            cost.figures
                == LoopTurnCost.Figures(
                    stateChanges: 2, lastStateChangeMilliseconds: 2, longestStateChangeMilliseconds: 5,
                    longestTurnMilliseconds: 5))
    }

    @Test func aTurnOverHalfTheFailoverTimeIsSaidWithWhereItsTimeWentAtMostEveryTenSeconds() throws {
        var cost = LoopTurnCost()
        #expect(cost.note(Self.turn(wall: 8), now: 0, failoverMilliseconds: 16) == nil, "exactly half: not yet")
        let said = cost.note(
            Self.turn(wall: 42, onCPU: 12, step: 10, swap: 30, swaps: 1), now: 100, failoverMilliseconds: 30)
        let first = try #require(said)
        #expect(first.contains("took 42.0 ms, over half the 30-ms failover time"), "\(first)")
        #expect(first.contains("the controller's step 10.0 ms, an engine swap 30.0 ms; off the CPU 30.0 ms"))
        #expect(first.contains("a view change costs this node that much: fewer buckets or longer heartbeats"))
        #expect(!first.contains("more such turns"))
        #expect(cost.note(Self.turn(wall: 20), now: 5_000, failoverMilliseconds: 30) == nil)
        #expect(cost.note(Self.turn(wall: 20), now: 9_000, failoverMilliseconds: 30) == nil)
        let saidAgain = cost.note(Self.turn(wall: 16, onCPU: 2), now: 10_100, failoverMilliseconds: 30)
        let next = try #require(saidAgain)
        #expect(next.contains("; 2 more such turns since the last of these lines"), "\(next)")
        #expect(next.contains("the host kept the thread from running"), "\(next)")
        #expect(cost.figures.longestTurnMilliseconds == 42 && cost.figures.stateChanges == 1)
        // On the CPU, with no state change: work on the loop's thread, which no turn should take that long.
        let saidOfOwnWork = cost.note(Self.turn(wall: 20, step: 1), now: 20_200, failoverMilliseconds: 30)
        let own = try #require(saidOfOwnWork)
        #expect(own.contains("the loop's own work outside a view change"), "\(own)")
    }
}
