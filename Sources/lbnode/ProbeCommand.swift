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
            authenticated messages on the heartbeat port; it sends ARP probes for the VIP. Each prints a verdict \
            per check, whether the MTUs agree, whether the VIP is already in use, and the cheapest delivery mode \
            that works for every node (each waits for the others' verdicts): flood, directed or relay. Exits 1 when \
            none works or the VIP is in use. delivery: auto runs the same probe when lbnode run starts.
            """
    )

    @Option(name: .shortAndLong, help: "The configuration file (docs/configuration.md).")
    var config: String

    @Option(help: "How long to probe, in seconds (1-30).")
    var seconds = 3.0

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard (1...30).contains(seconds) else { throw ValidationError("--seconds must be from 1 to 30") }
    }

    func run() throws {
        let farm: FarmConfig
        let keys: KeyFile
        do {
            farm = try FarmConfig.load(path: config)
            keys = try farm.checkKeyFile(configPath: config)
        } catch let error as ConfigError {
            throw CommandFailure(error.description)
        } catch {
            throw CommandFailure("\(error)")
        }
        guard Privileges.hasNetAdmin else { throw CommandFailure("probe needs CAP_NET_RAW: run it as root") }
        let report: FarmProbe.Report
        do {
            report = try FarmProbe(config: farm, keys: keys.keys, seconds: seconds).run()
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
                    "  node \(node.node) already runs lbnode (\(node.delivery ?? "unknown") delivery"
                        + "\(node.leader ? ", the leader" : "")): it takes no part in the probe")
            }
            print("delivery that works for the farm: \(report.delivery ?? "none")")
            print("  \(report.explanation)")
        }
        if report.delivery == nil || report.vipInUse { throw ExitCode(1) }
    }
}
