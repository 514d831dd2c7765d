import Foundation
import Hashing
import Logging
import RouteSetup
import Synchronization
import TapEngine

/// `lbnode run`: checks that the configuration fits this host, finds the delivery mode (`delivery: auto`), opens every
/// socket, applies the setup, then runs the heartbeat loop (`NodeLoop`) until it is asked to leave.
///
/// Everything that can be refused (a wrong interface or address, a port in use, an engine that cannot start) is found
/// before or right after the setup: a failure before it leaves the host untouched, and a failure after it undoes what
/// this start applied. Signals and the control socket's threads only set `DaemonRequests`, which the loop reads.
final class Daemon: @unchecked Sendable {
    /// As loaded; with `delivery: auto`, the mode the probe picked replaces the provisional one before anything runs.
    private(set) var config: FarmConfig
    let configPath: String
    let stateDirectory: String
    /// What outlives a reboot: the mode `delivery: auto` found (`/var/lib/vipfarm`; the unit's `StateDirectory`).
    let memoryDirectory: String
    static let defaultMemoryDirectory = "/var/lib/vipfarm"
    /// With `delivery: auto`: how long a node alone waits for a peer before it takes relay (nil: for ever).
    var loneWaitSeconds: Int? = 60
    let teardownOnExit: Bool
    /// With `--exit-with-parent`: the parent's PID; the node leaves when it is no longer the parent (it ended).
    let parent: pid_t?
    let requests: DaemonRequests
    private var signalSources: [DispatchSourceSignal] = []
    let logger: Logger
    /// systemd's readiness and watchdog (`Type=notify`); nil when no service manager listens.
    let notifier = ServiceNotifier()

    init(
        config: FarmConfig, configPath: String, stateDirectory: String,
        memoryDirectory: String = Daemon.defaultMemoryDirectory, teardownOnExit: Bool, parent: pid_t? = nil,
        logger: Logger
    ) {
        self.config = config
        self.configPath = configPath
        self.stateDirectory = stateDirectory
        self.memoryDirectory = memoryDirectory
        self.teardownOnExit = teardownOnExit
        self.parent = parent
        self.logger = logger
        requests = DaemonRequests(heartbeatIntervalMilliseconds: config.farm.heartbeatIntervalMilliseconds)
    }

    func log(_ level: Logger.Level = .info, _ message: String) {
        logger.log(level: level, "\(message)")
    }

    func run() throws {
        installSignalHandlers()  // before setup: a TERM or HUP during it must not kill the process half-way
        do {
            try SystemCall.lockMemory()
        } catch {
            log(.notice, "pages stay swappable (\(error)): a host that reclaims memory can stall the heartbeat loop")
        }
        let keys = try config.checkKeyFile(configPath: configPath).keys
        let findings = try config.checkHost()
        for warning in findings.warnings { log(.warning, "\(warning)") }
        var deliveryReason: String?
        if config.farm.deliverySetting == .auto {
            log(.notice, "delivery auto: probing the network with the peers that run")
            var auto = AutoDelivery(
                config: config, keys: keys, memoryDirectory: memoryDirectory, log: { [self] in log(.info, $0) },
                stopRequested: { [self] in requests.stop })
            auto.loneWaitSeconds = loneWaitSeconds
            guard let decision = try auto.decide() else {
                log(.notice, "stopped before the delivery mode was found: nothing was set up")
                return
            }
            config.farm.delivery = decision.delivery
            deliveryReason = decision.reason
            log(.notice, "delivery auto: \(decision.delivery) (\(decision.reason))")
        }
        let sockets = try NodeSockets(config: config, requests: requests, log: { [self] in log($0, $1) })
        let interface = try NetlinkSocket().requireLink(named: config.node.interface).mac
        let virtualMAC = FarmIdentity.virtualMAC(farm: config.farm.name, vip: config.farm.vip)
        let relay = config.farm.delivery == .relay
        let setup = ServerSetup(
            interface: config.node.interface, vip: config.farm.vip, tapName: config.node.tap,
            virtualMAC: relay ? interface ?? virtualMAC : virtualMAC, relay: relay)
        let applied = try setup.applySetupUndoably(stateDirectory: stateDirectory)
        log(
            .notice,
            applied.plan.isEmpty
                ? "setup: \(config.node.tap) is ready" : "setup: \(applied.plan.steps.count) steps applied")
        let loop: NodeLoop
        do {
            loop = try NodeLoop(
                daemon: self, keys: keys, sockets: sockets, setup: setup, virtualMAC: macValue(virtualMAC.bytes),
                interfaceMAC: interface.map { macValue($0.bytes) } ?? 0, deliveryReason: deliveryReason)
        } catch {
            // Nothing may stay half-configured: what this start applied goes again.
            do {
                try applied.undo()
                if !applied.plan.isEmpty { log(.notice, "setup undone: \(applied.plan.steps.count) steps") }
            } catch let undoError {
                log(.error, "cannot undo the setup (run `lbnode teardown`): \(undoError)")
            }
            throw error
        }
        loop.run()
        loop.leave()
        if teardownOnExit {
            let (teardown, _) = try setup.applyTeardown(stateDirectory: stateDirectory)
            log(.notice, "teardown: \(teardown.steps.count) steps")
        }
        log(.notice, "stopped")
    }

    private func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)  // a client gone mid-answer is an error to handle, not a reason to die
        signal(SIGCHLD, SIG_DFL)  // an inherited SIG_IGN would make checkers' waitpid fail
        for signalNumber in [SIGTERM, SIGINT, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [requests] in
                if signalNumber == SIGHUP {
                    requests.requestReload()
                } else {
                    requests.requestStop()
                }
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// What signals and the control socket ask of the heartbeat loop; the loop takes each request once.
final class DaemonRequests: Sendable {
    private struct Pending {
        var stop = false
        var reload = false
        /// Seconds of drain asked for (nil: none).
        var drainSeconds: Int?
        var undrain = false
    }
    private let pending = Mutex(Pending())
    /// Status snapshots, for `lbnode status` and `/metrics`.
    let status: StatusExchange

    init(heartbeatIntervalMilliseconds: Int) {
        status = StatusExchange(heartbeatIntervalMilliseconds: heartbeatIntervalMilliseconds)
    }

    var stop: Bool { pending.withLock { $0.stop } }
    func requestStop() { pending.withLock { $0.stop = true } }
    func requestReload() { pending.withLock { $0.reload = true } }
    func requestDrain(seconds: Int) {
        pending.withLock {
            $0.drainSeconds = seconds
            $0.undrain = false
        }
    }
    func requestUndrain() {
        pending.withLock {
            $0.undrain = true
            $0.drainSeconds = nil
        }
    }

    /// The requests since the last call (stop stays set).
    func take() -> (stop: Bool, reload: Bool, drainSeconds: Int?, undrain: Bool) {
        pending.withLock { pending in
            defer {
                pending.reload = false
                pending.drainSeconds = nil
                pending.undrain = false
            }
            return (pending.stop, pending.reload, pending.drainSeconds, pending.undrain)
        }
    }
}
