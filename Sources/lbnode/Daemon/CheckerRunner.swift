import Foundation
import Glibc
import Hashing
import RouteSetup
import Synchronization
import TapEngine

/// Runs the configured checkers on a thread of its own; the node is healthy while every one of them passes. Results
/// go through `HealthHysteresis`, so one lost probe does not flap the farm. A checker's health is unknown, which
/// counts as failing, until it has passed `rises` times: a node joins only once its application answers. (The link
/// of the farm interface is watched by the data-path monitor, at every heartbeat interval.)
final class CheckerRunner: @unchecked Sendable {
    private let checkers: [FarmConfig.Checker]
    private let vip: IPPrefix
    private let log: @Sendable (String) -> Void
    private let states: Mutex<[HealthHysteresis]>
    private let stopped = Mutex(false)
    private var thread: Thread?

    /// - Parameter previous: the runner of the configuration being reloaded: checkers that did not change keep
    ///   their health (a reload must not take a healthy node out, nor let a failing one in).
    init(config: FarmConfig, previous: CheckerRunner? = nil, log: @escaping @Sendable (String) -> Void) {
        checkers = config.checkers
        vip = config.farm.vip
        self.log = log
        let kept =
            previous.map { old in
                Dictionary(zip(old.checkers, old.states.withLock { $0 }), uniquingKeysWith: { first, _ in first })
            } ?? [:]
        states = Mutex(
            config.checkers.map { checker in
                kept[checker] ?? HealthHysteresis(fails: checker.fails, rises: checker.rises, healthy: false)
            })
    }

    /// Whether every checker passes.
    var healthy: Bool { states.withLock { $0.allSatisfy(\.healthy) } }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "vipfarm-checkers"
        self.thread = thread
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
    }

    private func run() {
        var due = Array(repeating: ContinuousClock.now, count: checkers.count)
        while !stopped.withLock({ $0 }) {
            for (index, checker) in checkers.enumerated() where ContinuousClock.now >= due[index] {
                due[index] = ContinuousClock.now + .milliseconds(checker.intervalMilliseconds)
                let success = probe(checker)
                if let changed = states.withLock({ $0[index].record(success: success) }) {
                    log("checker \(index) (\(describe(checker))) is \(changed ? "passing" : "failing")")
                }
            }
            usleep(10_000)
        }
    }

    private func describe(_ checker: FarmConfig.Checker) -> String {
        switch checker.kind {
        case .tcp(let port): "tcp \(vip.address):\(port)"
        case .command(let command): "command \(command)"
        }
    }

    private func probe(_ checker: FarmConfig.Checker) -> Bool {
        let timeout = max(10, checker.intervalMilliseconds / 2)
        switch checker.kind {
        case .tcp(let port): return Self.connects(to: vip, port: port, timeoutMilliseconds: Int32(timeout))
        case .command(let command): return ShellCommand.succeeds(command, timeoutMilliseconds: timeout)
        }
    }

    /// A TCP connect to the local application on the VIP, within the timeout.
    static func connects(to address: IPPrefix, port: UInt16, timeoutMilliseconds: Int32) -> Bool {
        guard let target = IPAddress(bytes: address.bytes), let socket = try? Socket(for: target, type: SOCK_STREAM)
        else { return false }
        return (try? socket.connect(to: target, port: port, timeoutMilliseconds: timeoutMilliseconds)) != nil
    }
}
