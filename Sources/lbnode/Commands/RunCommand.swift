import ArgumentParser
import Glibc
import Logging
import RouteSetup

extension LineLogHandler.Format: ExpressibleByArgument {}

/// `lbnode run`: the daemon.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run this node of the farm: setup if needed, the engine, heartbeats and failover.",
        discussion: """
            With delivery: auto it first finds the delivery mode: it probes the network for 2 s with the peers that \
            start with it, or takes the mode the running nodes' heartbeats name (lbnode.probe(1)). Then it applies \
            `lbnode setup` for the configured VIP if needed, starts the packet engine, and heartbeats the peers. A node joins (announces itself for dead_after intervals), then takes its buckets; when a peer \
            dies the survivors take its buckets at once, and buckets that move between live nodes are handed over \
            without breaking established TCP connections. SIGTERM or Ctrl-C stops: the peers are told at once and \
            take the node's buckets for new connections, but keep its open ones for it for 15 s; started again \
            within that time (systemctl restart, an upgrade), the node reads them from the kernel and serves them \
            on. The setup stays unless --teardown is given. Under systemd (Type=notify) it says READY=1 once it \
            serves and feeds the watchdog from its heartbeat loop. SIGHUP reloads the weight, the rules and the \
            checkers; other changes are refused with a log line (restart for those).
            """
    )

    @Option(name: .shortAndLong, help: "The configuration file (lbnode.yaml(5)).")
    var config: String

    @Option(help: "Where the values that setup overwrote are saved for teardown.")
    var stateDir: String = ServerSetup.defaultStateDirectory

    @Option(help: "Where `delivery: auto` remembers the mode it found, across reboots.")
    var memoryDir: String = Daemon.defaultMemoryDirectory

    @Option(
        help: ArgumentHelp(
            "With delivery: auto, seconds a node alone with no mode remembered waits for a peer before it takes relay.",
            discussion: "Relay works on any switch, and peers that start later join in it. 0 waits for ever."))
    var loneWait: Int = 60

    @Flag(help: "Undo the setup when stopping.")
    var teardown = false

    @Flag(help: "Leave (as on SIGTERM) when the process that started lbnode ends: for test harnesses and lbbench.")
    var exitWithParent = false

    @Option(
        help: ArgumentHelp(
            "Log lines as text or json (one object per line).",
            discussion: "Each line has a millisecond timestamp and a severity: warning for a dead peer, a fence, a "
                + "data path down, a failing checker, a refused reload; error for what stops the node. Under systemd "
                + "text lines carry their syslog priority, so `journalctl -p warning` finds them."))
    var logFormat: LineLogHandler.Format = .text

    func validate() throws {
        guard loneWait >= 0 else { throw ValidationError("--lone-wait must be 0 (for ever) or a number of seconds") }
    }

    func run() throws {
        let farm = try FarmConfig.loadForCommand(path: config)
        let label = "lbnode[\(farm.farm.name)/\(farm.node.id)]"
        let format = logFormat
        LoggingSystem.bootstrap { _ in
            LineLogHandler(label: label, format: format, syslogPrefix: LineLogHandler.writesToJournal)
        }
        defer { LogOutput.shared.flush() }
        let logger = Logger(label: label)
        guard Privileges.hasNetAdmin else {
            throw CommandFailure("run needs CAP_NET_ADMIN and CAP_NET_RAW: run it as root")
        }
        do {
            let daemon = Daemon(
                config: farm, configPath: config, stateDirectory: stateDir, memoryDirectory: memoryDir,
                teardownOnExit: teardown,
                parent: exitWithParent ? getppid() : nil, logger: logger)
            daemon.loneWaitSeconds = loneWait > 0 ? loneWait : nil
            try daemon.run()
        } catch {
            // One line, at error priority, through the log (it reaches the journal as such).
            logger.error("stopped: \(error)")
            throw ExitCode.failure
        }
    }
}
