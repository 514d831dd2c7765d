import ArgumentParser
import Foundation
import RouteSetup

/// `lbnode probe`: which delivery mode the network between the servers allows.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract:
            "Find out what the network lets through, and the delivery mode that works (run on every node at once).",
        discussion: """
            Run it on every server of the farm at the same time, before the VIP goes live (lbnode run must not be \
            running: the probe uses the heartbeat port). For a few seconds each node sends frames that only a \
            flooding switch delivers, frames from a second MAC that a strict virtual switch drops, and \
            authenticated messages on the heartbeat port; it sends ARP probes for the VIP. Nodes started up to \
            --peer-wait (10) s apart probe together: each goes on until it has heard every peer for a whole --seconds (or gives \
            up on a peer that did not start within --peer-wait s). Each prints a verdict per check, whether the MTUs agree, \
            whether the VIP is already in use, and the cheapest delivery mode that works for every node (each \
            waits for the others' verdicts): flood, directed or relay. Needs root. Exits 0 with a mode, 1 when no \
            mode works or the VIP is in use, 3 when no peer was probing at all (start it on the others). \
            delivery: auto runs the same probe when lbnode run starts.

            A one-line start on three servers at once: \
            for h in 192.0.2.11 192.0.2.12 192.0.2.13; do ssh root@$h lbnode probe -c /etc/vipfarm/web.yaml & \
            done; wait
            """
    )

    @Option(name: .shortAndLong, help: "The configuration file (lbnode.yaml(5)).")
    var config: String

    @Option(help: "How long to probe, in seconds (1-30).")
    var seconds = 3.0

    @Option(help: "How long to wait for peers that have not started probing yet, in seconds (0-60).")
    var peerWait = 10

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard (1...30).contains(seconds) else { throw ValidationError("--seconds must be from 1 to 30") }
        guard (0...60).contains(peerWait) else { throw ValidationError("--peer-wait must be from 0 to 60") }
    }

    func run() throws {
        let farm = try FarmConfig.loadForCommand(path: config)
        let keys = try farm.checkKeyFile(configPath: config)
        guard Privileges.hasNetAdmin else { throw CommandFailure("probe needs CAP_NET_RAW: run it as root") }
        _ = try farm.checkHost()
        let report: FarmProbe.Report
        do {
            var probe = FarmProbe(config: farm, keys: keys.keys, seconds: seconds)
            probe.startSkewMilliseconds = peerWait * 1000
            report = try probe.run()
        } catch {
            throw CommandFailure(
                "probe failed: \(error)\(("\(error)".contains("Address already in use")) ? " (is lbnode run running here?)" : "")"
            )
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("farm \(report.farm), node \(report.node): \(farm.peers.count) peers, \(Int(seconds)) s")
            for check in report.checks {
                print(
                    "  \(check.name.padding(toLength: 28, withPad: " ", startingAt: 0)) "
                        + "\(check.passed ? "yes" : "NO ")  \(check.detail)")
            }
            for node in report.running {
                print(
                    "  node \(node.node) already runs lbnode (\(node.delivery?.rawValue ?? "unknown") delivery"
                        + "\(node.leader ? ", the leader" : "")): it takes no part in the probe")
            }
            print("delivery that works for the farm: \(report.delivery?.rawValue ?? "none")")
            print("  \(report.explanation)")
        }
        if report.heard.isEmpty && report.running.isEmpty { throw ExitCode(3) }
        if report.delivery == nil || report.vipInUse { throw ExitCode(1) }
    }
}
