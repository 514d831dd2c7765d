import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testbed

/// `lbbench demo`: a farm of three servers on a virtual network, clients talking to its VIP, a server failing and
/// coming back, shown live; then a summary. Everything it builds is removed at the end, also on failure or Ctrl-C.
struct Demo {
    var delivery: DeliverySetting = .fixed(.directed)
    /// The heartbeat settings (nil: lbnode's defaults; a test sets a margin).
    var heartbeatIntervalMilliseconds: Int?
    var deadAfter: Int?
    /// Seconds per phase.
    var phaseSeconds = 8.0
    var write: (String) -> Void = { print($0, terminator: "") }
    /// Redraw the table in place (a terminal) instead of printing it once per phase.
    var live = isatty(STDOUT_FILENO) == 1

    static let udpFlows = 60
    static let tcpConnections = 30

    struct Summary: Codable {
        var requests = 0
        var answered: [UInt16: Int] = [:]
        var failoverMilliseconds: Double?
        var brokenElsewhere = 0
        var endedWithServer = 0
        var newOnReturned = 0
        /// The testbed the demo built (and removed).
        var testbedID = ""
    }

    func run() throws -> Summary {
        say("Building the network: a switch, servers 198.18.0.11-13 running lbnode and an echo service, a client.")
        let farm = try VirtualFarm(
            VirtualFarm.Options(
                delivery: delivery, heartbeatIntervalMilliseconds: heartbeatIntervalMilliseconds, deadAfter: deadAfter))
        defer { farm.stop() }
        guard farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]) else {
            throw FarmError("the farm did not form; node 1 logged:\n\(farm.log(1))")
        }
        say("The farm is up: VIP \(farm.vip), \(delivery) delivery, 4096 buckets shared by three servers.\n")
        let probe = try farm.openProbe(udp: Self.udpFlows, tcp: Self.tcpConnections, intervalMilliseconds: 5)
        probe.start()
        var summary = Summary()
        summary.testbedID = farm.testbed.id

        say(
            "1. Balanced: \(Self.udpFlows) UDP flows and \(Self.tcpConnections) TCP connections, a request every 5 ms "
                + "each.\n")
        show("Server 2 up", probe: probe, phases: [probe])

        say("2. Server 2 fails: its cable is cut. The others notice the silence and take its buckets.\n")
        let failedAt = probe.now
        try farm.setLink(2, up: false)
        show("Server 2 down", probe: probe, phases: [probe])

        say("3. Server 2 comes back and drains in: new connections go to it, established ones stay where they are.\n")
        try farm.setLink(2, up: true)
        _ = farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3], seconds: 5)
        let newcomers = try farm.openProbe(udp: 0, tcp: Self.tcpConnections, firstPort: 31000, intervalMilliseconds: 5)
        newcomers.start()
        show(
            "Server 2 back, with \(Self.tcpConnections) new TCP connections", probe: probe, phases: [probe, newcomers])
        probe.stop()
        newcomers.stop()

        let trial = FailoverTrial(mode: .link, records: probe.records, victim: 2, failedAt: failedAt)
        summary.failoverMilliseconds = trial.recoveryMilliseconds
        summary.brokenElsewhere = trial.tcpResetUnaffected
        summary.endedWithServer = trial.tcpResetAffected
        summary.requests = trial.requestsSent + newcomers.records.map(\.sent).reduce(0, +)
        for records in [probe.records, newcomers.records] {
            for record in records {
                for reply in record.replies { summary.answered[reply.server, default: 0] += 1 }
            }
        }
        summary.newOnReturned = newcomers.snapshot.lastServer.filter { $0 == 2 }.count
        return summary
    }

    private func say(_ text: String) {
        write(text + "\n")
    }

    /// Shows the per-server table for one phase: redrawn twice a second on a terminal, printed once otherwise.
    private func show(_ title: String, probe: FlowProbe, phases: [FlowProbe]) {
        let start = Date()
        var previous = probe.snapshot.answered
        var lines = 0
        while Date().timeIntervalSince(start) < phaseSeconds {
            Thread.sleep(forTimeInterval: 0.5)
            let left = max(0, Int((phaseSeconds - Date().timeIntervalSince(start)).rounded()))
            let text = table(
                live ? "\(title) (\(left) s left)" : title, probe: probe, phases: phases, previous: previous,
                elapsed: 0.5)
            previous = probe.snapshot.answered
            if live {
                write(String(repeating: "\u{1B}[1A\u{1B}[2K", count: lines) + text)
                lines = text.filter { $0 == "\n" }.count
            } else if Date().timeIntervalSince(start) >= phaseSeconds {
                write(text)  // a log, not a terminal: the last table of the phase only
            }
        }
        write("\n")
    }

    /// Requests per second in the last half second, share, and TCP connections per server.
    private func table(
        _ title: String, probe: FlowProbe, phases: [FlowProbe], previous: [UInt16: Int], elapsed: Double
    ) -> String {
        let snapshot = probe.snapshot
        let newer = phases.count > 1 ? phases[1].snapshot : nil
        let total = max(1, snapshot.answered.values.reduce(0, +) - previous.values.reduce(0, +))
        var table = TextTable(
            title: title,
            header: ["server", "answers/s", "share", "TCP connections talking", "new ones", "reset"])
        for server in UInt16(1)...3 {
            let answered = (snapshot.answered[server] ?? 0) - (previous[server] ?? 0)
            let connections = (0..<snapshot.lastServer.count).filter {
                probe.isTCP($0) && snapshot.lastServer[$0] == server && !snapshot.reset[$0]
                    && probe.now - snapshot.lastTime[$0] < 1_000_000_000
            }.count
            let resets = (0..<snapshot.lastServer.count).filter {
                snapshot.lastServer[$0] == server && snapshot.reset[$0]
            }.count
            let newOnes = newer.map { live in live.lastServer.filter { $0 == server }.count }
            table.add([
                "\(server)", String(format: "%.0f", Double(answered) / elapsed),
                String(format: "%.0f %%", 100 * Double(answered) / Double(total)), "\(connections)",
                newOnes.map(String.init) ?? "-", "\(resets)",
            ])
        }
        return table.rendered + "\n"
    }
}
