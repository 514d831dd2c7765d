import Foundation
import Hashing
import RouteSetup
import TapEngine

/// `lbbench failover` on the testbed: per trial a fresh three-server farm with the default heartbeat settings, a
/// steady stream from many UDP and TCP client flows, one server made to fail, and the probe's record read into a
/// `FailoverTrial`.
struct FailoverBenchmark {
    var modes: [FailureMode]
    var trials: Int
    var delivery: String
    var victim: Int
    var udpFlows: Int
    var tcpFlows: Int
    var intervalMilliseconds: Double
    var progress: (String) -> Void

    /// Steady traffic before the failure, and how long the probe goes on after it.
    static let before = 0.5
    static let after = 1.5

    func run() throws -> FailoverReport {
        var results: [FailoverTrial] = []
        for mode in modes {
            for number in 1...trials {
                let trial = try self.trial(mode)
                progress(
                    "\(mode) \(number)/\(trials): longest interruption "
                        + String(format: "%.1f ms", trial.longestInterruptionMilliseconds)
                        + ", \(trial.requestsLost) lost, \(trial.tcpResetUnaffected) unaffected TCP resets")
                results.append(trial)
            }
        }
        return FailoverReport(
            delivery: delivery, victim: victim, udpFlows: udpFlows, tcpFlows: tcpFlows,
            intervalMilliseconds: intervalMilliseconds, trials: results)
    }

    func trial(_ mode: FailureMode) throws -> FailoverTrial {
        var options = VirtualFarm.Options()
        options.delivery = delivery
        let farm = try VirtualFarm(options)
        defer { farm.stop() }
        let everyone = farm.testbed.servers.map(\.number)
        guard farm.waitForView(Self.view(everyone), nodes: everyone) else {
            throw FarmError("the farm did not form: node 1 logged:\n\(farm.log(1))")
        }
        let probe = try farm.testbed.clients[0].namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                try FlowProbe(
                    vip: farm.vip, port: VirtualFarm.echoPort, udp: udpFlows, tcp: tcpFlows, firstPort: 30000,
                    intervalMilliseconds: intervalMilliseconds)
            }
        }.get()
        probe.start()
        Thread.sleep(forTimeInterval: Self.before)
        let failedAt = probe.now
        try fail(farm, mode)
        Thread.sleep(forTimeInterval: Self.after)
        probe.stop()
        return FailoverTrial(mode: mode, records: probe.records, victim: UInt16(victim), failedAt: failedAt)
    }

    private func fail(_ farm: VirtualFarm, _ mode: FailureMode) throws {
        switch mode {
        case .kill: farm.signal(victim, SIGKILL)
        case .stop: farm.signal(victim, SIGSTOP)
        case .link: try farm.setLink(victim, up: false)
        case .drain: _ = try farm.control(["drain", "--timeout", "30"], node: victim)
        }
    }

    /// "{1:100, 2:100, 3:100}", as lbnode logs a view.
    static func view(_ nodes: [Int]) -> String {
        "{" + nodes.map { "\($0):100" }.joined(separator: ", ") + "}"
    }
}
