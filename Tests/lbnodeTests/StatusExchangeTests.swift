import Foundation
import Testing

@testable import lbnode

/// `lbnode status` and `/metrics` get a snapshot the heartbeat loop took after they asked, without the loop building
/// one at each of its turns; a stalled loop still answers, with its last snapshot marked stale.
struct StatusExchangeTests {
    private func status(generation: UInt64) -> NodeStatus {
        NodeStatus(
            farm: "test", node: 1, state: "active", leader: 1, delivery: "directed", agreed: true,
            generation: generation, members: [], flows: 0, engine: [:], offloads: [:], heartbeatsRejected: [:],
            lastChange: nil, lastFailover: nil)
    }

    @Test func theLoopBuildsASnapshotOnlyWhenAskedOrASecondAfterTheLast() throws {
        let exchange = StatusExchange(heartbeatIntervalMilliseconds: 4)
        let start = ContinuousClock.now
        let first = try #require(exchange.due(now: start), "the first turn publishes: nothing was published yet")
        exchange.publish(status(generation: 1), answering: first)
        #expect(exchange.due(now: .now) == nil, "nobody asked, and a second has not passed")
        #expect(exchange.due(now: .now + .milliseconds(1100)) != nil, "a second after the last, without an ask")
    }

    @Test func aReaderGetsTheSnapshotOfTheTurnAfterItsAsk() async throws {
        let exchange = StatusExchange(heartbeatIntervalMilliseconds: 4)
        exchange.publish(status(generation: 1), answering: exchange.due(now: .now)!)
        // The loop: turns every millisecond, publishing the generation of the turn when a reader asked.
        let loop = Task.detached {
            for turn in 2...2000 {
                if let asked = exchange.due(now: .now) {
                    exchange.publish(self.status(generation: UInt64(turn)), answering: asked)
                }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        defer { loop.cancel() }
        try await Task.sleep(for: .milliseconds(20))
        let read = try #require(exchange.current())
        #expect(read.generation > 1, "a snapshot taken after the ask, not the one from before")
        #expect(read.staleMilliseconds == nil)
    }

    @Test func aStalledLoopsSnapshotSaysHowOldItIs() throws {
        let exchange = StatusExchange(heartbeatIntervalMilliseconds: 50)
        #expect(exchange.current() == nil, "before the loop's first turn there is nothing to show")
        exchange.publish(status(generation: 7), answering: exchange.due(now: .now)!)
        Thread.sleep(forTimeInterval: 0.2)
        let began = ContinuousClock.now
        let read = try #require(exchange.current())
        let waited = ContinuousClock.now - began
        #expect(read.generation == 7)
        #expect((150...10_000).contains(read.staleMilliseconds ?? 0), "the snapshot's age, about 350 ms")
        #expect(waited >= exchange.patience && waited < .seconds(2), "waited for the loop as long as a turn can take")
    }
}
