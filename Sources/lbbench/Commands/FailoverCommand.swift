import ArgumentParser
import Foundation
import Hashing
import TapEngine

/// `lbbench failover`: how long the clients of a failed server wait, on a testbed.
struct FailoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Measure failover: a server fails while many flows talk to the farm (needs root).",
        discussion: """
            Per trial: a fresh testbed with three servers running `lbnode run` (heartbeat every 4 ms, dead after 4 \
            missed: the defaults) and the echo application, and a client that sends a request on every UDP and TCP \
            flow each interval. After 0.5 s of steady traffic the victim fails (kill: SIGKILL of its lbnode; link: \
            its cable cut; stop: SIGSTOP; drain: `lbnode drain`; long-cut: its cable cut for --long-seconds, then \
            restored), and the probe runs 1.5 s more. Per trial: the \
            longest interruption of a flow the victim served, the time until each was answered again, requests \
            lost, duplicates, and TCP connections reset, of the victim's and of the others. Per mode: p50, p99 and \
            max over the trials. A long cut also reports, from a second after the cut until the cable came back, \
            the view changes the survivors logged, the requests lost and the longest silence of any flow (while it \
            had a request out, by the kernel's arrival time of the reply; a farm must be as steady while a server \
            is away as before). With --compare, the same trials for keepalived (VRRPv3, Debian package) as an \
            active/passive pair on the same kind of testbed, with its fastest advertisement interval (10 ms) and \
            with its default (1 s); the master fails (drain: keepalived's graceful stop).
            """
    )

    @Option(parsing: .upToNextOption, help: "Failure modes on the testbed: kill, link, stop, drain, long-cut.")
    var modes: [FailureMode] = FailureMode.onTestbed

    @Option(help: "Trials per mode.")
    var trials = 10

    @Option(help: "Seconds a long-cut lasts.")
    var longSeconds = 60.0

    @Option(help: ArgumentHelp(DeliverySetting.help))
    var delivery: DeliverySetting = .fixed(.directed)

    @Flag(
        help: """
            On a strict virtual switch (no unknown-unicast flooding, each port dropping frames from any source MAC \
            but its host's): relay delivery only.
            """)
    var strictSwitch = false

    @Flag(help: "On a switch that does not flood unknown unicast: directed, relay or auto delivery.")
    var noFlooding = false

    @Option(help: "The server that fails (1 is the director).")
    var victim = 2

    @Option(help: "UDP client flows.")
    var udpFlows = 48

    @Option(help: "TCP connections.")
    var tcpFlows = 24

    @Option(help: "Milliseconds between two requests of a flow.")
    var intervalMs = 2.0

    @OptionGroup var farm: RealFarmOptions

    @Option(
        help: """
            With --vip: a shell command that fails one server (else fail one by hand while it records). The failure is \
            the victim's last answer, or the command's start if later: the command's own time (ssh) is not recovery.
            """)
    var failCommand: String?

    @Option(help: "With --vip and no --fail-command: seconds to record.")
    var seconds = 30.0

    @Flag(help: "Also measure keepalived (fastest and default advertisement interval) in the same run.")
    var compare = false

    @OptionGroup var engineThreads: EngineThreadsOption

    @OptionGroup var heartbeat: HeartbeatOption

    @OptionGroup var output: ReportOptions

    func validate() throws {
        if farm.vip == nil && failCommand != nil {
            throw ValidationError("--fail-command goes with --vip (a real farm)")
        }
        guard (3...3600).contains(seconds) else { throw ValidationError("--seconds must be from 3 to 3600") }
        if modes.contains(.manual) { throw ValidationError("--modes: manual is what --vip measures") }
        guard (1...1000).contains(trials) else { throw ValidationError("--trials must be from 1 to 1000") }
        guard (5...3600).contains(longSeconds) else { throw ValidationError("--long-seconds must be from 5 to 3600") }
        if strictSwitch && ![.fixed(.relay), .auto].contains(delivery) {
            throw ValidationError("--strict-switch: only relay delivery works there (--delivery relay or auto)")
        }
        if noFlooding && delivery == .fixed(.flood) {
            throw ValidationError(
                "--no-flooding: flood delivery cannot work there (--delivery directed, relay or auto)")
        }
        guard (1...3).contains(victim) else { throw ValidationError("--victim must be 1, 2 or 3") }
        guard (1...1000).contains(udpFlows), (0...1000).contains(tcpFlows) else {
            throw ValidationError("--udp-flows must be from 1 to 1000 and --tcp-flows from 0 to 1000")
        }
        guard (0.1...100).contains(intervalMs) else { throw ValidationError("--interval-ms must be from 0.1 to 100") }
    }

    func run() throws {
        let progress = { (line: String) in FileHandle.standardError.write(Data("lbbench failover: \(line)\n".utf8)) }
        if let vip = farm.address {
            let report = try RealHostFailover(
                vip: vip, interface: farm.interface, failCommand: failCommand, seconds: seconds,
                udpFlows: udpFlows, tcpFlows: tcpFlows, intervalMilliseconds: intervalMs, progress: progress
            ).run()
            try output.emit(
                "failover", title: "lbbench failover on a real farm", table: report.table, value: report,
                charts: report.charts)
            return
        }
        try requireRoot()
        warnAboutLeftovers()
        let benchmark = FailoverBenchmark(
            systems: compare ? FailoverSystem.allCases : [.vipfarm], modes: modes, trials: trials, delivery: delivery,
            testbed: .init(
                servers: 3, clients: 1, unknownUnicastFlooding: !strictSwitch && !noFlooding, portSecurity: strictSwitch
            ),
            victim: victim, udpFlows: udpFlows, tcpFlows: tcpFlows,
            intervalMilliseconds: intervalMs, longSeconds: longSeconds, engineThreads: engineThreads.value,
            heartbeat: heartbeat.settings, progress: progress)
        let report = try benchmark.run()
        try output.emit(
            "failover", title: "lbbench failover", table: report.table, value: report, charts: report.charts)
    }
}

extension FailureMode: ExpressibleByArgument {}
