import Foundation
import Glibc
import Hashing
import Logging
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
    private let log: @Sendable (Logger.Level, String) -> Void
    private let states: Mutex<[HealthHysteresis]>
    /// Why each checker last failed (nil: its last probe passed).
    private let lastFailures: Mutex<[String?]>
    private let stopped = Mutex(false)
    private var thread: Thread?

    /// - Parameter previous: the runner of the configuration being reloaded: checkers that did not change keep
    ///   their health (a reload must not take a healthy node out, nor let a failing one in).
    init(config: FarmConfig, previous: CheckerRunner? = nil, log: @escaping @Sendable (Logger.Level, String) -> Void) {
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
        lastFailures = Mutex([String?](repeating: nil, count: config.checkers.count))
    }

    /// Whether every checker passes.
    var healthy: Bool { states.withLock { $0.allSatisfy(\.healthy) } }

    /// The checkers that do not pass, each with why: "checker 0 (tcp 198.18.0.100:80): connection refused", or
    /// "... not passed yet" before its first passes.
    var failing: [String] {
        let (states, failures) = (states.withLock { $0 }, lastFailures.withLock { $0 })
        return checkers.indices.filter { !states[$0].healthy }.map { index in
            "checker \(index) (\(describe(checkers[index]))): \(failures[index] ?? "not passed enough times yet")"
        }
    }

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
                let failure = probe(checker)
                lastFailures.withLock { $0[index] = failure }
                if let changed = states.withLock({ $0[index].record(success: failure == nil) }) {
                    log(
                        changed ? .notice : .warning,
                        "checker \(index) (\(describe(checker))) is \(changed ? "passing" : "failing: \(failure ?? "")")")
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

    /// Why one probe of `checker` failed, or nil when it passed.
    private func probe(_ checker: FarmConfig.Checker) -> String? {
        let timeout = max(10, checker.intervalMilliseconds / 2)
        switch checker.kind {
        case .tcp(let port): return Self.connectFailure(to: vip, port: port, timeoutMilliseconds: Int32(timeout))
        case .command(let command):
            let outcome = ShellCommand.run(command, timeoutMilliseconds: timeout)
            return outcome == .exited(0) ? nil : "\(outcome)"
        }
    }

    /// A TCP connect to the local application on the VIP, within the timeout.
    static func connects(to address: IPPrefix, port: UInt16, timeoutMilliseconds: Int32) -> Bool {
        connectFailure(to: address, port: port, timeoutMilliseconds: timeoutMilliseconds) == nil
    }

    /// Why a TCP connect to `address:port` failed within the timeout ("connection refused"), or nil.
    static func connectFailure(to address: IPPrefix, port: UInt16, timeoutMilliseconds: Int32) -> String? {
        do {
            guard let target = IPAddress(bytes: address.bytes) else { return "not an address" }
            try Socket(for: target, type: SOCK_STREAM)
                .connect(to: target, port: port, timeoutMilliseconds: timeoutMilliseconds)
            return nil
        } catch {
            return String(cString: strerror(error.errno)).lowercased()
        }
    }
}
