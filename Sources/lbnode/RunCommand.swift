import ArgumentParser
import Glibc
import Logging
import RouteSetup

/// `lbnode run`: the daemon.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run this node of the farm: setup if needed, the engine, heartbeats and failover.",
        discussion: """
            With delivery: auto it first finds the delivery mode: it probes the network for 2 s with the peers that \
            start with it, or takes the mode the running nodes' heartbeats name (docs/operations.md). Then it applies \
            `lbnode setup` for the configured VIP if needed, starts the packet engine, and heartbeats the peers. A node joins (announces itself for dead_after intervals), then takes its buckets; when a peer \
            dies the survivors take its buckets at once, and buckets that move between live nodes are handed over \
            without breaking established TCP connections. SIGTERM or Ctrl-C leaves gracefully: the peers are told \
            at once. The setup stays unless --teardown is given. SIGHUP reloads the weight, the rules and the \
            checkers; other changes are refused with a log line (restart for those).
            """
    )

    @Option(name: .shortAndLong, help: "The configuration file (docs/configuration.md).")
    var config: String

    @Option(help: "Where the values that setup overwrote are saved for teardown.")
    var stateDir: String = ServerSetup.defaultStateDirectory

    @Flag(help: "Undo the setup when stopping.")
    var teardown = false

    @Flag(help: "Leave (as on SIGTERM) when the process that started lbnode ends: for test harnesses and lbbench.")
    var exitWithParent = false

    func run() throws {
        let farm: FarmConfig
        do {
            farm = try FarmConfig.load(path: config)
        } catch let error as ConfigError {
            throw CommandFailure(error.description)
        }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        guard Privileges.hasNetAdmin else {
            throw CommandFailure("run needs CAP_NET_ADMIN and CAP_NET_RAW: run it as root")
        }
        do {
            try Daemon(
                config: farm, configPath: config, stateDirectory: stateDir, teardownOnExit: teardown,
                parent: exitWithParent ? getppid() : nil
            ).run()
        } catch {
            throw CommandFailure("run failed: \(error)")
        }
    }
}
