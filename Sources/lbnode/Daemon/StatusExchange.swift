import Foundation
import Synchronization
import TapEngine

/// Hands status snapshots from the heartbeat loop to `lbnode status`, `/metrics` and the control commands. Building
/// one reads every counter and member, so the loop builds it only when a reader asked (at its next turn, within a
/// heartbeat interval) and once a second besides, not at each of its hundreds of turns a second.
final class StatusExchange: Sendable {
    private struct Published {
        var snapshot: NodeStatus?
        /// The asks this snapshot answers (every ask up to this number).
        var answers = 0
        /// When it was published (nil: never yet).
        var at: ContinuousClock.Instant?
    }

    private let published = Mutex(Published())
    private let asks = Atomic<Int>(0)
    /// How long a reader waits for the loop's answer: a turn comes at least every heartbeat interval.
    let patience: Duration

    /// The loop publishes at least this often, so that a reader of a stalled loop gets a recent snapshot.
    static let publishInterval = Duration.seconds(1)

    init(heartbeatIntervalMilliseconds: Int) {
        patience = .milliseconds(min(1000, heartbeatIntervalMilliseconds + 100))
    }

    /// A snapshot taken at the loop's next turn; when the loop does not answer within `patience` (it is stalled), the
    /// latest it published, marked with its age. Nil before the loop's first turn.
    func current() -> NodeStatus? {
        let ask = asks.add(1, ordering: .sequentiallyConsistent).newValue
        let deadline = ContinuousClock.now + patience
        while true {
            let latest = published.withLock { $0 }
            if latest.answers >= ask { return latest.snapshot }
            let now = ContinuousClock.now
            if now >= deadline {
                guard var stale = latest.snapshot, let at = latest.at else { return nil }
                stale.staleMilliseconds = (now - at).wholeMilliseconds
                return stale
            }
            usleep(200)
        }
    }

    /// The newest ask the loop has not answered, or nil; nil too when `publishInterval` has not passed since the last
    /// snapshot and nobody asked.
    func due(now: ContinuousClock.Instant) -> Int? {
        let asked = asks.load(ordering: .sequentiallyConsistent)
        let (answers, at) = published.withLock { ($0.answers, $0.at) }
        return asked > answers || (at.map { now - $0 >= Self.publishInterval } ?? true) ? asked : nil
    }

    /// Publishes `snapshot`, answering every ask up to `asked` (from `due`).
    func publish(_ snapshot: NodeStatus, answering asked: Int) {
        published.withLock { $0 = Published(snapshot: snapshot, answers: asked, at: .now) }
    }
}
