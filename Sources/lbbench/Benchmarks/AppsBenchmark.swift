import Foundation
import Hashing
import TapEngine
import Testbed

/// `lbbench apps` on the testbed: per delivery mode a three-server farm of `lbnode run` on hosts with the kernel's
/// offloads, Debian's nginx and an iperf3 server on every server, and the same client programs run through the VIP
/// and straight to server 1's own address (the reference, measured in the same run). Then wrk through the VIP while
/// one server's lbnode is killed.
struct AppsBenchmark {
    var deliveries: [DeliverySetting]
    /// Each delivery mode with the prefilter on, off, or both one after the other.
    var prefilterSettings: [Bool] = [true]
    /// Each with kernel delivery on, off, or both (it needs the prefilter: one run without the prefilter).
    var kernelDeliverySettings: [Bool] = [true]
    /// Each delivery mode with an IPv4 VIP, an IPv6 VIP (on a dual-stack testbed, against server 1's own IPv6
    /// address), or both.
    var ipVersions = [4]
    var seconds: Int
    var repetitions: Int
    var connections: Int
    var udpBitsPerSecond: Int
    /// Profile the machine (perf) during the first wrk run of each path, keeping the recordings here.
    var profileDirectory: String? = nil
    /// `node.engine_threads` of every node (nil: the default, `auto`).
    var engineThreads: Int? = nil
    var progress: (String) -> Void

    /// The server whose lbnode the kill test ends.
    static let victim = 3

    func run() throws -> AppsReport {
        var report = AppsReport(
            seconds: seconds, connections: connections, udpBitsPerSecond: udpBitsPerSecond, victim: Self.victim)
        for mode in deliveries {
            for version in ipVersions {
                // Kernel delivery needs the prefilter: without it, one run.
                for prefilter in prefilterSettings {
                    for kernelDelivery in prefilter ? kernelDeliverySettings : [false] {
                        try measure(
                            mode, ipv6: version == 6, prefilter: prefilter, kernelDelivery: kernelDelivery,
                            into: &report)
                    }
                }
            }
        }
        return report
    }

    /// One farm: the tests through the VIP and direct, then the kill; reported as `delivery` (", IPv6",
    /// ", prefilter off", ", kernel delivery off").
    private func measure(
        _ mode: DeliverySetting, ipv6: Bool, prefilter: Bool, kernelDelivery: Bool, into report: inout AppsReport
    ) throws {
        let delivery =
            "\(mode)" + (ipv6 ? ", IPv6" : "")
            + (prefilter ? (kernelDelivery ? "" : ", kernel delivery off") : ", prefilter off")
        var options = VirtualFarm.Options(delivery: mode, realApplications: true)
        if ipv6 {
            options.testbed.ipv6 = true
            options.vip = Self.vip6
        }
        options.prefilter = prefilter
        options.kernelDelivery = kernelDelivery
        options.engineThreads = engineThreads
        let farm = try VirtualFarm(options)
        defer { farm.stop() }
        do {
            try measure(on: farm, mode: mode, delivery: delivery, ipv6: ipv6, into: &report)
        } catch {
            // What the nodes saw (a view change, a fence) is gone with the farm: say it with the failure.
            throw FarmError("\(delivery): \(error)\nthe nodes' logs:\n\(farm.logs)")
        }
    }

    private func measure(
        on farm: VirtualFarm, mode: DeliverySetting, delivery: String, ipv6: Bool, into report: inout AppsReport
    ) throws {
        let everyone = farm.testbed.servers.map(\.number)
        guard farm.waitForView(VirtualFarm.view(everyone), nodes: everyone) else {
            throw FarmError("the farm did not form: node 1 logged:\n\(farm.log(1))")
        }
        // Measured in steady ownership, as a farm runs, not in the handover windows its nodes' joins opened.
        progress("\(delivery): waiting for the joins' handover windows to end (30 s)")
        if !farm.waitForHandoversToEnd(nodes: everyone) { progress("\(delivery): a handover window is still open") }
        let logged = farm.logLengths()
        let (_, rest) = measuringCPU(of: farm) { Thread.sleep(forTimeInterval: Self.restSeconds) }
        report.atRest = (report.atRest ?? []) + [.init(delivery: delivery, seconds: Self.restSeconds, cpu: rest)]
        progress(String(format: "%@: at rest, the lbnodes used %.3f cores", delivery, rest.lbnodeCores))
        let client = farm.testbed.clients[0].namespace
        let server = farm.testbed.servers[0]
        let serverAddress = "\((ipv6 ? server.address6! : server.address).address)"
        // In flood delivery the switch floods every client frame to every server; straight traffic that the switch
        // floods too shows what that costs this testbed, apart from what vipfarm costs.
        let floodedReference = mode == .fixed(.flood)
        let targets =
            [(AppsReport.Path.vip, "\(farm.vip)"), (.direct, serverAddress)]
            + (floodedReference ? [(.directFlooded, serverAddress)] : [])
        for repetition in 1...repetitions {
            // The order alternates, so that neither path always runs on a warmer (or more tired) machine.
            for (path, address) in repetition % 2 == 1 ? targets : targets.reversed() {
                if floodedReference { try farm.testbed.setFlooding(toward: server, enabled: path == .directFlooded) }
                let label = "\(delivery)-\(path.rawValue)".replacingOccurrences(of: ", ", with: "-")
                    .replacingOccurrences(of: " ", with: "-")
                let recording = try profileDirectory.flatMap { directory in
                    repetition == 1
                        ? try SystemProfile.start(seconds: seconds, directory: directory, label: label) : nil
                }
                let (web, webCPU) = try measuringCPU(of: farm) {
                    try Wrk.run(in: client, url: Self.url(address), seconds: seconds, connections: connections)
                }
                if let recording {
                    let profile = try recording.finish(requests: web.requests)
                    report.profiles =
                        (report.profiles ?? []) + [.init(delivery: delivery, path: path, profile: profile)]
                }
                report.web.append(
                    .init(delivery: delivery, path: path, repetition: repetition, result: web, cpu: webCPU))
                progress("\(delivery) \(repetition)/\(repetitions) \(path.rawValue): wrk \(Self.summary(web))")
                let latency = try RequestLatency.measure(in: client, address: IPAddress(address)!)
                report.latency.append(
                    .init(delivery: delivery, path: path, repetition: repetition, result: latency))
                progress(
                    "\(delivery) \(repetition)/\(repetitions) \(path.rawValue): one request at a time "
                        + String(
                            format: "median %.0f µs, p99 %.0f µs", latency.medianMicroseconds,
                            latency.p99Microseconds))
                for test in AppsReport.BulkTest.allCases {
                    let (result, cpu) = try measuringCPU(of: farm) {
                        try Iperf3.run(
                            in: client, server: address, seconds: seconds, download: test == .tcpDownload,
                            udpBitsPerSecond: test == .udp ? udpBitsPerSecond : nil)
                    }
                    report.bulk.append(
                        .init(
                            delivery: delivery, test: test, path: path, repetition: repetition, result: result,
                            cpu: cpu))
                    progress(
                        "\(delivery) \(repetition)/\(repetitions) \(path.rawValue): iperf3 \(test.rawValue) "
                            + String(
                                format: "%.0f Mbit/s, %.3f %% lost, %d retransmits",
                                result.bitsPerSecond / 1e6, result.lostPercent, result.retransmits))
                }
            }
            if floodedReference { try farm.testbed.setFlooding(toward: server, enabled: false) }
            try measureClientPerServer(farm, delivery: delivery, repetition: repetition, ipv6: ipv6, into: &report)
        }
        let events = farm.events(since: logged)
        report.farmEvents = (report.farmEvents ?? [:]).merging([delivery: events]) { $1 }
        progress(
            "\(delivery): \(events.count) view changes, warnings and errors logged while measuring"
                + events.map { "\n  \($0)" }.joined())
        let restart = try restartDuringLoad(farm, delivery: delivery)
        report.kills.append(restart)
        progress("\(delivery): wrk while node \(Self.victim) is restarted: \(Self.summary(restart.result))")
        let kill = try killDuringLoad(farm, delivery: delivery)
        report.kills.append(kill)
        progress("\(delivery): wrk while node \(Self.victim) is killed: \(Self.summary(kill.result))")
    }

    /// How long the farm's CPU is measured at rest, before any traffic.
    static let restSeconds = 5.0

    /// wrk as a farm without a load balancer is used: one wrk per server, the connections split among them, each
    /// straight to its server's own address; against as many wrk, all through the VIP. One nginx answering every
    /// connection makes more of each wake-up than three answering a third each, so on two cores the single-server
    /// reference is worth more per CPU than any farm; this one spreads the work as the VIP does.
    private func measureClientPerServer(
        _ farm: VirtualFarm, delivery: String, repetition: Int, ipv6: Bool, into report: inout AppsReport
    ) throws {
        let servers = farm.testbed.servers
        let direct = servers.map { "\((ipv6 ? $0.address6! : $0.address).address)" }
        let runs: [(AppsReport.Path, [String])] = [
            (.vipClientPerServer, Array(repeating: "\(farm.vip)", count: servers.count)),
            (.directClientPerServer, direct),
        ]
        for (path, addresses) in repetition % 2 == 1 ? runs : runs.reversed() {
            let (web, cpu) = try measuringCPU(of: farm) {
                try Wrk.runTogether(
                    in: farm.testbed.clients[0].namespace, urls: addresses.map(Self.url), seconds: seconds,
                    connections: max(1, connections / servers.count))
            }
            report.web.append(.init(delivery: delivery, path: path, repetition: repetition, result: web, cpu: cpu))
            progress("\(delivery) \(repetition)/\(repetitions) \(path.rawValue): wrk \(Self.summary(web))")
        }
    }

    /// The VIP of the IPv6 runs, in the testbed's IPv6 subnet.
    static let vip6 = "2001:2::100"

    /// nginx's page at `address` (an IPv6 address in brackets).
    static func url(_ address: String) -> String {
        address.contains(":") ? "http://[\(address)]/" : "http://\(address)/"
    }

    /// "41135 req/s, p99 1.38 ms, 0 errors".
    static func summary(_ result: Wrk.Result) -> String {
        String(
            format: "%.0f req/s, p99 %.2f ms, %d errors", result.requestsPerSecond, result.p99Milliseconds,
            result.errors) + (result.errors > 0 ? " (\(result.errorKinds ?? "?"))" : "")
    }

    /// Runs `body` and measures the CPU the machine and the farm's lbnodes used meanwhile.
    func measuringCPU<T>(of farm: VirtualFarm, _ body: () throws -> T) rethrows -> (T, AppsReport.CPUUse) {
        let pids = Array(farm.processes.runningIdentifiers.values)
        let (machineBefore, lbnodesBefore, start) = (CPUSample.now(), processCPUSeconds(pids), Date())
        let value = try body()
        let elapsed = Date().timeIntervalSince(start)
        return (
            value,
            AppsReport.CPUUse(
                machineCores: CPUSample.busySeconds(from: machineBefore, to: CPUSample.now()) / elapsed,
                lbnodeCores: (processCPUSeconds(pids) - lbnodesBefore) / elapsed)
        )
    }

    /// wrk through the VIP for twice `seconds`; a third of the way in, server `victim`'s lbnode is restarted as
    /// `systemctl restart` does (SIGTERM, then started again once it has exited). No connection may be cut: the
    /// peers leave its connections alone while it is away, and it takes them back from the kernel.
    func restartDuringLoad(_ farm: VirtualFarm, delivery: String) throws -> AppsReport.Kill {
        let duration = 2 * seconds
        let restartAfter = Double(duration) / 3
        let restarted = DispatchSemaphore(value: 0)
        let box = UncheckedBox(farm)  // the main thread only runs wrk meanwhile
        DispatchQueue.global().asyncAfter(deadline: .now() + restartAfter) {
            try? box.value.restart(Self.victim)
            restarted.signal()
        }
        let result = try Wrk.run(
            in: farm.testbed.clients[0].namespace, url: Self.url("\(farm.vip)"), seconds: duration,
            connections: connections)
        restarted.wait()
        let everyone = farm.testbed.servers.map(\.number)
        return AppsReport.Kill(
            delivery: delivery, seconds: duration, killedAfterSeconds: restartAfter, result: result,
            survivorsAgreed: farm.waitForView(VirtualFarm.view(everyone), nodes: everyone, seconds: 5),
            restarted: true)
    }

    /// wrk through the VIP for twice `seconds`; a third of the way in, server `victim`'s lbnode is SIGKILLed.
    /// The survivors take its buckets; its connections are reset by the servers that now receive them (they do not
    /// know them), and wrk opens new ones.
    func killDuringLoad(_ farm: VirtualFarm, delivery: String) throws -> AppsReport.Kill {
        let duration = 2 * seconds
        let killAfter = Double(duration) / 3
        let timer = DispatchWorkItem { farm.signal(Self.victim, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + killAfter, execute: timer)
        defer { timer.cancel() }
        let result = try Wrk.run(
            in: farm.testbed.clients[0].namespace, url: Self.url("\(farm.vip)"), seconds: duration,
            connections: connections)
        let survivors = farm.testbed.servers.map(\.number).filter { $0 != Self.victim }
        return AppsReport.Kill(
            delivery: delivery, seconds: duration, killedAfterSeconds: killAfter, result: result,
            survivorsAgreed: farm.waitForView(VirtualFarm.view(survivors), nodes: survivors, seconds: 2))
    }
}
