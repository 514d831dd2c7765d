import ArgumentParser

/// `lbnode check`: validates a configuration file without touching the system.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file (and its key file) and print what it describes.",
        discussion: "Exits 1 with the file, line, key and reason of the first problem. See docs/configuration.md."
    )

    @Option(name: .shortAndLong, help: "The configuration file.")
    var config: String

    func run() throws {
        let farm: FarmConfig
        do {
            farm = try FarmConfig.load(path: config)
        } catch let error as ConfigError {
            throw CommandFailure(error.description)
        }
        print(
            """
            \(config): ok
              farm \(farm.farm.name): VIP \(farm.farm.vip.address), \(farm.farm.deliveryIsAuto ? "auto (probed at start)" : farm.farm.delivery.rawValue) delivery, \
            \(farm.farm.buckets) buckets (\(farm.farm.table.rawValue)), heartbeats every \
            \(farm.farm.heartbeatIntervalMilliseconds) ms on port \(farm.farm.heartbeatPort), dead after \
            \(farm.farm.deadAfter) missed
              node \(farm.node.id) on \(farm.node.interface) (\(farm.node.address.address)), weight \(farm.node.weight); \
            peers \(farm.peers.map { "\($0.id)@\($0.address.address)" }.joined(separator: ", "))
              \(farm.rules.count) rules, \(farm.checkers.count) checkers
            """)
    }
}
