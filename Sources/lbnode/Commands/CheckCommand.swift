import ArgumentParser

/// `lbnode check`: validates a configuration file, and that it fits this host, without changing anything.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file (and its key file) against this host and print what it describes.",
        discussion: """
            Checks the file (every problem with its file, line and key), the key file (run as root: it is root's), \
            and the host: the interface exists, node.address is one of its addresses, the VIP is no address of this \
            host and lies in one of the interface's subnets (a warning otherwise). Changes nothing. Exits 1 when \
            something must be fixed. See lbnode.yaml(5).
            """
    )

    @Option(name: .shortAndLong, help: "The configuration file.")
    var config: String

    @Flag(help: "Check the file only, not this host (a configuration written for another server).")
    var skipHost = false

    func run() throws {
        let farm = try FarmConfig.loadForCommand(path: config)
        if !skipHost {
            let findings = try farm.checkHost()
            for warning in findings.warnings { printError("lbnode: warning: \(warning)") }
        }
        let delivery = farm.farm.deliverySetting == .auto ? "auto (probed at start)" : "\(farm.farm.deliverySetting)"
        print(
            """
            \(config): ok
              farm \(farm.farm.name): VIP \(farm.farm.vip.address), \(delivery) delivery, \
            \(farm.farm.buckets) buckets (\(farm.farm.table.rawValue)), heartbeats every \
            \(farm.farm.heartbeatIntervalMilliseconds) ms on port \(farm.farm.heartbeatPort), dead after \
            \(farm.farm.deadAfter) missed
              node \(farm.node.id) on \(farm.node.interface) (\(farm.node.address.address)), weight \(farm.node.weight); \
            peers \(farm.peers.map { "\($0.id)@\($0.address.address)" }.joined(separator: ", "))
              \(farm.rules.count) rules, \(farm.checkers.count) checkers
            """)
    }
}

extension FarmConfig {
    /// `load`, with a `ConfigError` turned into the command's one-line failure.
    static func loadForCommand(path: String) throws -> FarmConfig {
        do {
            return try load(path: path)
        } catch let error as ConfigError {
            throw CommandFailure(error.description)
        }
    }

    /// `HostCheck` on this host: its warnings, or a failure listing every error (one per line).
    func checkHost() throws -> HostCheck.Findings {
        let findings: HostCheck.Findings
        do {
            findings = try HostCheck(config: self).findings()
        } catch {
            throw CommandFailure("cannot read this host's interfaces: \(error)")
        }
        guard findings.errors.isEmpty else {
            throw CommandFailure(findings.errors.map(\.description).joined(separator: "\nlbnode: "))
        }
        return findings
    }
}
