import Foundation
import Synchronization

/// A look at the system that may take long (the `nft` program, a netlink dump of every neighbour or socket), run on a
/// thread of its own and read when ready: the heartbeat loop never waits for it, since a late heartbeat or a late view
/// change is a slow failover. `start` begins a look unless one is under way; `latest` is the newest finished one.
final class BackgroundCheck<Value: Sendable>: Sendable {
    private let work: @Sendable () -> Value
    private let queue: DispatchQueue
    /// The latest finding and when the look that found it began (ms), its generation, and whether one is under way.
    private let state = Mutex<(latest: (value: Value, startedAt: Int)?, generation: Int, running: Bool)>(
        (nil, 0, false))

    init(label: String, _ work: @escaping @Sendable () -> Value) {
        self.work = work
        queue = DispatchQueue(label: "vipfarm.\(label)", qos: .utility)
    }

    /// The newest finding and when its look began.
    var latest: (value: Value, startedAt: Int)? { state.withLock { $0.latest } }

    /// Forgets what was found (the system was just changed); a look under way then counts for nothing.
    func reset() {
        state.withLock {
            $0.latest = nil
            $0.generation += 1
        }
    }

    /// Starts a look at `now` (ms) unless one is under way.
    func start(now: Int) {
        let generation: Int? = state.withLock {
            guard !$0.running else { return nil }
            $0.running = true
            return $0.generation
        }
        guard let generation else { return }
        queue.async { [self] in
            let found = work()
            state.withLock {
                $0.running = false
                if $0.generation == generation { $0.latest = (found, now) }
            }
        }
    }
}
