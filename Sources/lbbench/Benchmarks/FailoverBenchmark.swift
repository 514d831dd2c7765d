import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testbed

/// `lbbench failover` on the testbed: per trial a fresh three-server farm with the default heartbeat settings, a
/// steady stream from many UDP and TCP client flows, one server made to fail, and the probe's record read into a
/// `FailoverTrial`.
struct FailoverBenchmark {
    var systems: [FailoverSystem] = [.vipfarm]
    var modes: [FailureMode]
    var trials: Int
    var delivery: DeliverySetting
    /// The network of every trial.
    var testbed = VirtualNetwork.Description(servers: 3, clients: 1)
    var victim: Int
    var udpFlows: Int
    var tcpFlows: Int
    var intervalMilliseconds: Double
    /// How long a `long-cut` lasts, in seconds.
    var longSeconds = 60.0
    /// `node.engine_threads` of every vipfarm node (nil: the default).
    var engineThreads: Int? = nil
    /// The heartbeat settings of every vipfarm node (nil fields: the defaults).
    var heartbeat = HeartbeatOption.Settings()
    var progress: (String) -> Void

    /// Steady traffic before the failure.
    static let before = 0.5

    func run() throws -> FailoverReport {
        var results: [FailoverTrial] = []
        for system in systems {
            for mode in modes {
                for number in 1...trials {
                    let trial = try self.trial(system, mode)
                    progress(
                        "\(system.rawValue) \(mode) \(number)/\(trials): recovery "
                            + (trial.recoveryMilliseconds.map { String(format: "%.1f ms", $0) } ?? "none")
                            + ", \(trial.requestsLost) lost, \(trial.tcpResetUnaffected) unaffected TCP resets, "
                            + "\(trial.tcpResetBeforeFailure) before the failure"
                            + (trial.whileAway.map {
                                "; while away: \(trial.viewChangesWhileAway.map(String.init) ?? "-") view changes, "
                                    + "\($0.lost) lost, longest silence \(String(format: "%.1f", $0.longestSilenceMilliseconds)) ms"
                            } ?? ""))
                    results.append(trial)
                }
            }
        }
        return FailoverReport(
            delivery: delivery.description, victim: victim, udpFlows: udpFlows, tcpFlows: tcpFlows,
            intervalMilliseconds: intervalMilliseconds, trials: results)
    }

    func trial(_ system: FailoverSystem, _ mode: FailureMode) throws -> FailoverTrial {
        let subject: FailoverSubject
        let victim: Int
        switch system {
        case .vipfarm:
            var options = VirtualFarm.Options(testbed: testbed)
            options.delivery = delivery
            options.engineThreads = engineThreads
            heartbeat.apply(to: &options)
            let farm = try VirtualFarm(options)
            let everyone = farm.testbed.servers.map(\.number)
            guard farm.waitForView(VirtualFarm.view(everyone), nodes: everyone) else {
                farm.stop()
                throw FarmError("the farm did not form: node 1 logged:\n\(farm.log(1))")
            }
            (subject, victim) = (farm, self.victim)
        case .keepalivedFast, .keepalivedDefault:
            let pair = try KeepalivedPair(advertisementSeconds: system.advertisementSeconds)
            guard pair.waitUntilServing(seconds: 3 + 5 * system.advertisementSeconds) else {
                pair.stop()
                throw FarmError("keepalived's master did not take the VIP")
            }
            (subject, victim) = (pair, 1)
        }
        defer { subject.stop() }
        let probe = try subject.openProbe(udp: udpFlows, tcp: tcpFlows, intervalMilliseconds: intervalMilliseconds)
        probe.start()
        Thread.sleep(forTimeInterval: Self.before)
        let failedAt = probe.now
        try subject.fail(victim, mode)
        var away: (window: ClosedRange<Int64>, changes: Int?)?
        if mode == .longCut {
            // The first failover, then the steady state the rest of the cut must keep.
            Thread.sleep(forTimeInterval: 1)
            let settledAt = probe.now
            let before = subject.viewChanges(excluding: victim)
            Thread.sleep(forTimeInterval: max(1, longSeconds - 1))
            let changes = subject.viewChanges(excluding: victim).flatMap { after in before.map { after - $0 } }
            away = (settledAt...probe.now, changes)
            try subject.testbed.setCable(ofServer: victim, up: true)
        }
        Thread.sleep(forTimeInterval: system.after)
        probe.stop()
        var trial = FailoverTrial(
            system: system, mode: mode, records: probe.records, victim: UInt16(victim), failedAt: failedAt)
        if let away {
            trial.whileAway = WindowTally(probe.records, sendTimes: probe.sendTimes, window: away.window)
            trial.viewChangesWhileAway = away.changes
        }
        return trial
    }
}

/// What fails over: a vipfarm farm, or the keepalived reference.
enum FailoverSystem: String, CaseIterable, Codable, Sendable {
    case vipfarm
    /// keepalived with its fastest advertisement interval, 10 ms (VRRPv3).
    case keepalivedFast = "keepalived-10ms"
    /// keepalived with its default advertisement interval, 1 s.
    case keepalivedDefault = "keepalived-1s"

    var advertisementSeconds: Double { self == .keepalivedDefault ? 1 : 0.01 }
    /// How long the probe goes on after the failure: past the slowest detection.
    var after: Double { self == .keepalivedDefault ? 5 : 1.5 }
}

/// A pair or farm that a failover trial can fail.
protocol FailoverSubject: AnyObject {
    var testbed: VirtualNetwork { get }
    var vip: IPAddress { get }
    func fail(_ number: Int, _ mode: FailureMode) throws
    func stop()
    /// The view changes the nodes but `number` logged so far (nil: the system has no views).
    func viewChanges(excluding number: Int) -> Int?
}


extension FailoverSubject {
    /// A probe from the first client to the echo application behind the VIP (see `FlowProbe`), not started.
    func openProbe(udp: Int, tcp: Int, firstPort: UInt16 = 30000, intervalMilliseconds: Double) throws -> FlowProbe {
        try testbed.clients[0].namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                try FlowProbe(
                    vip: vip, port: VirtualFarm.echoPort, udp: udp, tcp: tcp, firstPort: firstPort,
                    intervalMilliseconds: intervalMilliseconds)
            }
        }.get()
    }
}

extension VirtualFarm: FailoverSubject {
    func fail(_ number: Int, _ mode: FailureMode) throws {
        switch mode {
        case .kill: signal(number, SIGKILL)
        case .stop: signal(number, SIGSTOP)
        case .link, .longCut: try testbed.setCable(ofServer: number, up: false)
        case .drain: _ = try control(["drain", "--timeout", "30"], node: number)
        case .manual: break
        }
    }

    func viewChanges(excluding number: Int) -> Int? {
        FarmChaos(farm: self).viewChanges(of: testbed.servers.map(\.number).filter { $0 != number })
    }
}

extension KeepalivedPair: FailoverSubject {
    func fail(_ number: Int, _ mode: FailureMode) throws {
        switch mode {
        case .kill: signal(number, SIGKILL)
        case .stop: signal(number, SIGSTOP)
        case .link, .longCut: try testbed.setCable(ofServer: number, up: false)
        case .drain: signal(number, SIGTERM)  // keepalived's graceful stop: it sends priority 0, the backup takes over
        case .manual: break
        }
    }

    func viewChanges(excluding number: Int) -> Int? { nil }

}
