import ArgumentParser
import Foundation
import TapEngine

/// `lbbench demo`: the whole product on one machine, in under a minute.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Show a vipfarm farm on a virtual network: balancing, a server failing, and coming back (root).",
        discussion: """
            Builds a virtual network on this machine (network namespaces, a bridge as the switch, addresses from \
            198.18.0.0/15 with no route out): three servers running `lbnode run` and an echo service on UDP and TCP \
            port 9000, and a client with 60 UDP flows and 30 TCP connections to the VIP 198.18.0.100. It shows, \
            live, how the servers share the traffic; cuts server 2's cable and shows its clients moving to the \
            others; brings it back and shows new connections going to it while established ones stay; then prints \
            a summary. Everything it built is removed at the end, also on failure or Ctrl-C.
            """
    )

    @Option(help: ArgumentHelp(DeliverySetting.help))
    var delivery: DeliverySetting = .fixed(.directed)

    @Option(help: "Seconds per phase.")
    var phaseSeconds = 8.0

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard (1...120).contains(phaseSeconds) else { throw ValidationError("--phase-seconds must be from 1 to 120") }
    }

    func run() throws {
        try requireRoot()
        warnAboutLeftovers()
        var demo = Demo(delivery: delivery, phaseSeconds: phaseSeconds)
        if output.json {  // standard output is for the JSON: the show goes to standard error
            demo.write = { FileHandle.standardError.write(Data($0.utf8)) }
            demo.live = false
        }
        let summary = try demo.run()
        let total = max(1, summary.answered.values.reduce(0, +))
        var table = TextTable(title: "Summary", header: ["", "value"])
        table.add(["requests sent", "\(summary.requests)"])
        table.add(["requests answered", "\(total)"])
        for server in summary.answered.keys.sorted() {
            let count = summary.answered[server] ?? 0
            table.add([
                "  by server \(server)", "\(count) (\(String(format: "%.0f", 100 * Double(count) / Double(total))) %)",
            ])
        }
        table.add([
            "failover time (server 2's clients answered again)",
            summary.failoverMilliseconds.map { String(format: "%.0f ms", $0) } ?? "not recovered",
        ])
        table.add(["connections broken on the servers that stayed up", "\(summary.brokenElsewhere)"])
        table.add(["connections that ended with server 2", "\(summary.endedWithServer)"])
        table.add(["new connections served by server 2 after it came back", "\(summary.newOnReturned)"])
        let servers = summary.answered.keys.sorted()
        let balance = SVGChart(
            title: "Requests answered per server over the demo", xLabel: "server", yLabel: "requests",
            kind: .bars(categories: servers.map { "server \($0)" }),
            series: [
                .init(
                    name: "answered",
                    points: servers.enumerated().map {
                        (x: Double($0.offset), y: Double(summary.answered[$0.element] ?? 0))
                    })
            ])
        try output.emit(
            "demo", title: "lbbench demo",
            table: table.rendered
                + "\n\nThe network is gone again. `lbbench failover` measures failover over many trials "
                + "(docs/benchmarks.md).", value: summary, charts: ["balance": balance])
        if summary.brokenElsewhere > 0 || summary.failoverMilliseconds == nil {
            throw ExitCode(1)
        }
    }
}
