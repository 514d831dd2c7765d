import Foundation
import RouteSetup
import Synchronization

/// Whether the setup (TAP, VIP, sysctls, relay's ingress drop) is still in place, checked on a thread of its own: with
/// relay delivery the check runs the `nft` program, which on a loaded machine takes tens of milliseconds that the
/// heartbeat loop cannot lose (a late heartbeat or a late view change is a slow failover).
final class SetupCheck: Sendable {
    private let setup: ServerSetup
    private let queue = DispatchQueue(label: "vipfarm.setup-check", qos: .utility)
    /// The latest finding, the generation it belongs to, and whether a check is under way.
    private let state = Mutex<(drift: String?, generation: Int, running: Bool)>((nil, 0, false))

    init(setup: ServerSetup) {
        self.setup = setup
    }

    /// What the latest check found changed, or nil.
    var drift: String? { state.withLock { $0.drift } }

    /// Forgets what was found (the setup was just re-applied); a check under way then counts for nothing.
    func reset() {
        state.withLock {
            $0.drift = nil
            $0.generation += 1
        }
    }

    /// Starts a check unless one is under way.
    func start() {
        let generation: Int? = state.withLock {
            guard !$0.running else { return nil }
            $0.running = true
            return $0.generation
        }
        guard let generation else { return }
        queue.async { [self] in
            let found = Self.drift(of: setup)
            state.withLock {
                $0.running = false
                if $0.generation == generation { $0.drift = found }
            }
        }
    }

    private static func drift(of setup: ServerSetup) -> String? {
        do {
            let plan = try setup.planSetup(using: try NetlinkSocket())
            return plan.isEmpty ? nil : "the setup changed (\(plan.steps.map { "\($0)" }.joined(separator: "; ")))"
        } catch {
            return "the setup cannot be checked: \(error)"
        }
    }
}
