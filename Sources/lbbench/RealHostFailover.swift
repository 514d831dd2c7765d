import Foundation
import Hashing
import TapEngine
import Testbed

/// `lbbench failover --vip ADDR` on a client of a real farm (hosts or VMs running `lbnode run` and `lbbench serve`):
/// the same probe and figures as on the testbed. The user fails a server by hand while the traffic runs, or gives a
/// command that does (e.g. `ssh web2 systemctl kill -s KILL lbnode`); the victim is the server whose answers stopped,
/// and the failure is the command's start or, by hand, the victim's last answer.
struct RealHostFailover {
    var vip: IPAddress
    var interface: String?
    var failCommand: String?
    /// How long to record when the failure is by hand.
    var seconds: Double
    var udpFlows: Int
    var tcpFlows: Int
    var intervalMilliseconds: Double
    var progress: (String) -> Void

    func run() throws -> FailoverReport {
        let probe = try FlowProbe(
            vip: vip, port: VirtualFarm.echoPort, udp: udpFlows, tcp: tcpFlows, firstPort: 30000,
            intervalMilliseconds: intervalMilliseconds, interface: interface)
        probe.start()
        Thread.sleep(forTimeInterval: 2)
        let answering = Set(probe.snapshot.lastServer.filter { $0 != 0 })
        guard !answering.isEmpty else {
            probe.stop()
            throw FarmError(
                "no answer from \(vip) port \(VirtualFarm.echoPort): is `lbbench serve --id N --vip \(vip)` running "
                    + "on every server, and lbnode?")
        }
        progress("servers answering: \(answering.sorted().map(String.init).joined(separator: ", "))")
        var failedAt: Int64?
        if let failCommand {
            progress("running: \(failCommand)")
            failedAt = probe.now
            // ShellCommand (posix_spawn), not Foundation's Process: that one takes tens of ms to start a shell and to
            // see it end, all of which would count as recovery time.
            let succeeded = ShellCommand.succeeds(failCommand, timeoutMilliseconds: 60_000, keepOutput: true)
            progress(
                String(format: "the command ended after %.1f ms", Double(probe.now - failedAt!) / 1e6)
                    + (succeeded ? "" : " (it failed, or ran longer than 60 s)"))
            Thread.sleep(forTimeInterval: 3)
        } else {
            progress("traffic is running: fail one server now; recording for \(Int(seconds)) s")
            Thread.sleep(forTimeInterval: seconds)
        }
        probe.stop()
        var lastAnswer: [UInt16: Int64] = [:]
        for record in probe.records {
            for reply in record.replies { lastAnswer[reply.server] = max(lastAnswer[reply.server] ?? 0, reply.time) }
        }
        let end = probe.now
        guard let (victim, last) = lastAnswer.min(by: { $0.value < $1.value }), end - last > 1_000_000_000 else {
            throw FarmError("every server answered until the end: no failure was seen")
        }
        progress("server \(victim) stopped answering")
        let trial = FailoverTrial(
            mode: .manual, records: probe.records, victim: victim, failedAt: failedAt ?? last)
        return FailoverReport(
            delivery: "real hosts", victim: Int(victim), udpFlows: udpFlows, tcpFlows: tcpFlows,
            intervalMilliseconds: intervalMilliseconds, trials: [trial])
    }
}
