import Foundation
import Hashing
import TapEngine
import Testbed

/// `lbbench failover --vip ADDR` on a client of a real farm (hosts or VMs running `lbnode run` and `lbbench serve`):
/// the same probe and figures as on the testbed. The user fails a server by hand while the traffic runs, or gives a
/// command that does (e.g. `ssh web2 systemctl kill -s KILL lbnode`); the victim is the server whose answers stopped,
/// and the failure is its last answer, or the command's start if that came later. A command takes its time to fail
/// the server (ssh's connection, a shell on a busy host: 192 ms once on the hand-built farm), and none of it is the
/// farm's: its clients were still answered.
struct RealHostFailover {
    /// A server silent this long (while its flows went on) failed; a live one answers every few milliseconds.
    static let failureSilenceNanoseconds: Int64 = 300_000_000

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
        let probe = try openProbe()
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
        var commandStart: Int64?
        if let failCommand {
            progress("running: \(failCommand)")
            let started = probe.now
            commandStart = started
            // ShellCommand (posix_spawn), not Foundation's Process: that one takes tens of ms to start a shell and to
            // see it end, all of which would count as recovery time.
            let succeeded = ShellCommand.succeeds(failCommand, timeoutMilliseconds: 60_000, keepOutput: true)
            progress(
                String(format: "the command ended after %.1f ms", Double(probe.now - started) / 1e6)
                    + (succeeded ? "" : " (it failed, or ran longer than 60 s)"))
            Thread.sleep(forTimeInterval: 3)
        } else {
            progress("traffic is running: fail one server now; recording for \(Int(seconds)) s")
            Thread.sleep(forTimeInterval: seconds)
        }
        let end = probe.now
        probe.stop()
        // The victim is the server whose answers stopped longest: it may be back before the end (a unit that systemd
        // restarts a second after a crash rejoins within the recording).
        var answers: [UInt16: [Int64]] = [:]
        for record in probe.records {
            for reply in record.replies { answers[reply.server, default: []].append(reply.time) }
        }
        let silences = answers.mapValues { times -> (start: Int64, length: Int64) in
            let sorted = times.sorted()
            var longest = (start: sorted.last!, length: max(0, end - sorted.last!))
            for (earlier, later) in zip(sorted, sorted.dropFirst()) where later - earlier > longest.length {
                longest = (earlier, later - earlier)
            }
            return longest
        }
        guard let (victim, silence) = silences.max(by: { $0.value.length < $1.value.length }),
            silence.length > Self.failureSilenceNanoseconds
        else {
            throw FarmError("every server answered throughout: no failure was seen")
        }
        progress("server \(victim) stopped answering for \(silence.length / 1_000_000) ms")
        // The victim failed after its last answer (within a request interval of it).
        let failedAt = max(commandStart ?? 0, silence.start + 1)
        let trial = FailoverTrial(mode: .manual, records: probe.records, victim: victim, failedAt: failedAt)
        return FailoverReport(
            delivery: "real hosts", victim: Int(victim), udpFlows: udpFlows, tcpFlows: tcpFlows,
            intervalMilliseconds: intervalMilliseconds, trials: [trial])
    }

    /// The probe's flows, once every server they reach accepts connections: `lbbench serve`, started a moment
    /// earlier on some server, may still be starting (its TCP flows are refused, 10 s at most).
    private func openProbe() throws -> FlowProbe {
        let deadline = Date().addingTimeInterval(10)
        var told = false
        while true {
            do {
                return try FlowProbe(
                    vip: vip, port: VirtualFarm.echoPort, udp: udpFlows, tcp: tcpFlows, firstPort: 30000,
                    intervalMilliseconds: intervalMilliseconds, interface: interface)
            } catch {
                guard error.errno == ECONNREFUSED, Date() < deadline else { throw error }
                if !told {
                    progress("\(vip) port \(VirtualFarm.echoPort) refuses connections: waiting for `lbbench serve`")
                }
                told = true
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }
}
