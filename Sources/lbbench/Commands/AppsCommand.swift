import ArgumentParser
import Foundation
import TapEngine

/// `lbbench apps`: real applications (nginx under wrk, iperf3) through the VIP against straight to one server.
struct AppsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apps",
        abstract: "Measure nginx under wrk and iperf3 through the VIP against straight to one server (root).",
        discussion: """
            Per delivery mode, a testbed farm of three servers running `lbnode run`, on hosts with the kernel's \
            offloads (checksum offload and TSO on, GRO on the servers' NICs), with Debian's nginx and an iperf3 server \
            on every server (a rule with `affinity: single` keeps each iperf3 client's connections on one node). First \
            the lbnodes' CPU at rest (5 s of heartbeats only, no client traffic). From the client, through the VIP and \
            straight to server 1's own address, alternating which goes first: wrk requests/s, latency p99 and errors; \
            iperf3 TCP upload and download; iperf3 UDP at a fixed rate and its loss. In flood delivery the same \
            straight to server 1 once more with the switch flooding every frame to it to all ports (`direct, \
            flooded`), as it floods the VIP's: what flooding itself costs this testbed, where one machine's cores run \
            the switch and every server. Then wrk as a farm without a load balancer is used: a wrk per server, the \
            connections split among them, each straight to its server, against as many wrk through the VIP (`a client \
            per server`). Then wrk through the VIP while server 3's lbnode is restarted (SIGTERM, then started again, \
            as `systemctl restart` does: no connection may be cut), and while it is killed (SIGKILL): its connections \
            are reset when the survivors take its buckets, and wrk opens new ones. Prints medians and the ratios VIP / \
            direct (and VIP / direct, flooded). `--ip 4 6` measures each mode with an IPv4 and an IPv6 VIP. Needs \
            nginx-light, iperf3 and wrk (`make setup`).
            """
    )

    @Option(parsing: .upToNextOption, help: "The delivery modes to measure, each on a farm of its own.")
    var deliveries: [DeliverySetting] = [.fixed(.directed), .fixed(.flood)]

    @Option(help: "The nodes' bucket prefilter: on, off, or both (each delivery mode measured with and without it).")
    var prefilter = "on"

    @Option(
        help: ArgumentHelp(
            "The nodes' kernel delivery: on, off, or both (each delivery mode measured with and without it).",
            discussion: "Off is measured only with the prefilter on: kernel delivery needs it."))
    var kernelDelivery = "on"

    @Option(
        name: .customLong("ip"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "VIP families to measure: 4, 6 or both.",
            discussion: "An IPv6 VIP runs on a dual-stack testbed, against server 1's own IPv6 address."))
    var ipVersions: [Int] = [4]

    @Option(
        help: ArgumentHelp(
            "Profile the machine with perf during the first wrk run of each path; keep the recordings here.",
            valueName: "directory"))
    var profile: String?

    @Option(help: "Seconds per client run (the restart and kill tests run twice as long).")
    var seconds = 5

    @Option(name: .customLong("repeat"), help: "Runs of each test per path; the table shows medians.")
    var repetitions = 3

    @Option(help: "wrk's concurrent connections.")
    var connections = 32

    @Option(help: "iperf3 UDP rate, in Mbit/s.")
    var udpMbits = 200

    @OptionGroup var engineThreads: EngineThreadsOption

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard !deliveries.isEmpty else { throw ValidationError("--deliveries takes directed, flood and/or relay") }
        guard ["on", "off", "both"].contains(prefilter) else {
            throw ValidationError("--prefilter takes on, off or both")
        }
        guard ["on", "off", "both"].contains(kernelDelivery) else {
            throw ValidationError("--kernel-delivery takes on, off or both")
        }
        guard !ipVersions.isEmpty, ipVersions.allSatisfy({ $0 == 4 || $0 == 6 }) else {
            throw ValidationError("--ip takes 4 and/or 6")
        }
        guard (1...120).contains(seconds) else { throw ValidationError("--seconds must be from 1 to 120") }
        guard (1...20).contains(repetitions) else { throw ValidationError("--repeat must be from 1 to 20") }
        guard (1...4096).contains(connections) else { throw ValidationError("--connections must be from 1 to 4096") }
        guard (1...10_000).contains(udpMbits) else { throw ValidationError("--udp-mbits must be from 1 to 10000") }
    }

    func run() throws {
        try requireRoot()
        warnAboutLeftovers()
        let benchmark = AppsBenchmark(
            deliveries: deliveries, prefilterSettings: prefilter == "both" ? [true, false] : [prefilter == "on"],
            kernelDeliverySettings: kernelDelivery == "both" ? [true, false] : [kernelDelivery == "on"],
            ipVersions: ipVersions,
            seconds: seconds, repetitions: repetitions, connections: connections,
            udpBitsPerSecond: udpMbits * 1_000_000, profileDirectory: profile,
            engineThreads: engineThreads.value
        ) { line in FileHandle.standardError.write(Data("lbbench apps: \(line)\n".utf8)) }
        let report = try benchmark.run()
        try output.emit(
            "apps", title: "lbbench apps: nginx and iperf3 through the VIP against direct", table: report.table,
            value: report)
    }
}
