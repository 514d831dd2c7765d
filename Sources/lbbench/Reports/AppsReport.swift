import Foundation
import Testbed

/// The figures of `lbbench apps`: real applications through the VIP against straight to one server.
struct AppsReport: Codable {
    /// Where the client program connects.
    enum Path: String, Codable {
        /// The VIP: the farm's engines deliver to every server.
        case vip = "VIP"
        /// Server 1's own address: no vipfarm in the path, the reference.
        case direct
        /// Server 1's own address with the switch flooding every frame to it to all ports, as it floods the VIP's in
        /// flood delivery (measured on flood farms): what flooding itself costs the testbed, without vipfarm.
        case directFlooded = "direct, flooded"
        /// wrk only: one wrk per server, all through the VIP.
        case vipClientPerServer = "VIP, a client per server"
        /// wrk only: one wrk per server, each straight to its server: the farm without a load balancer.
        case directClientPerServer = "direct, a client per server"

        /// The frames go through vipfarm (the lbnodes' CPU is part of what the path costs).
        var isThroughVIP: Bool { self == .vip || self == .vipClientPerServer }
    }

    enum BulkTest: String, Codable, CaseIterable {
        case tcpUpload = "TCP upload"
        case tcpDownload = "TCP download"
        case udp = "UDP at a fixed rate"
    }

    /// CPU used during one run, in cores (CPU seconds per second): the whole machine (client, switch, servers,
    /// lbnodes) and the lbnodes alone.
    struct CPUUse: Codable {
        var machineCores: Double
        var lbnodeCores: Double
    }

    struct Web: Codable {
        var delivery: String
        var path: Path
        var repetition: Int
        var result: Wrk.Result
        var cpu: CPUUse
    }

    /// One HTTP request at a time on a keep-alive connection: the latency a path adds when it is not loaded.
    struct Latency: Codable {
        var delivery: String
        var path: Path
        var repetition: Int
        var result: RequestLatency.Result
    }

    struct Bulk: Codable {
        var delivery: String
        var test: BulkTest
        var path: Path
        var repetition: Int
        var result: Iperf3.Result
        var cpu: CPUUse
    }

    /// wrk through the VIP while one server's lbnode is killed, or restarted (SIGTERM, then started again).
    struct Kill: Codable {
        var delivery: String
        var seconds: Int
        var killedAfterSeconds: Double
        var result: Wrk.Result
        /// The survivors logged the view without the victim (a kill), or every node the full view again (a restart).
        var survivorsAgreed: Bool
        /// A restart, not a kill (nil in reports from before restarts were measured).
        var restarted: Bool? = nil
    }

    var seconds: Int
    var connections: Int
    var udpBitsPerSecond: Int
    var victim: Int
    var web: [Web] = []
    var latency: [Latency] = []
    var bulk: [Bulk] = []
    var kills: [Kill] = []
    /// The farm at rest (no client traffic, heartbeats only), per delivery mode: what the lbnodes cost by themselves
    /// (nil in reports from before it was measured).
    var atRest: [AtRest]? = nil
    /// `--profile`: the machine during the first wrk run of each path.
    var profiles: [Profiled]? = nil
    /// Per delivery mode, what the nodes logged at warning level or about their views while the clients measured
    /// (before the restart and the kill): a farm that flapped under the load says so beside its figures.
    var farmEvents: [String: [String]]? = nil

    struct AtRest: Codable {
        var delivery: String
        var seconds: Double
        var cpu: CPUUse
    }

    struct Profiled: Codable {
        var delivery: String
        var path: Path
        var profile: SystemProfile
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// The median of `value` over the runs of one delivery mode and path.
    func webMedian(_ delivery: String, _ path: Path, _ value: (Wrk.Result) -> Double) -> Double {
        Self.median(web.filter { $0.delivery == delivery && $0.path == path }.map { value($0.result) })
    }

    func bulkMedian(_ delivery: String, _ test: BulkTest, _ path: Path, _ value: (Iperf3.Result) -> Double) -> Double {
        Self.median(
            bulk.filter { $0.delivery == delivery && $0.test == test && $0.path == path }.map { value($0.result) })
    }

    /// "1.95 (lbnodes 0.41)": median cores the machine and the lbnodes used in the runs of one test and path.
    func cpuText(_ delivery: String, _ test: BulkTest?, _ path: Path) -> String {
        let runs =
            test.map { test in bulk.filter { $0.delivery == delivery && $0.test == test && $0.path == path }.map(\.cpu)
            }
            ?? web.filter { $0.delivery == delivery && $0.path == path }.map(\.cpu)
        let machine = Self.median(runs.map(\.machineCores))
        return path.isThroughVIP
            ? String(format: "%.2f (lbnodes %.2f)", machine, Self.median(runs.map(\.lbnodeCores)))
            : String(format: "%.2f", machine)
    }

    /// The ratio `path` / `reference` of the medians (the VIP against straight to server 1 unless said), for each
    /// delivery mode and test (nil: wrk): what the farm costs (0: the reference was not measured).
    func ratio(_ delivery: String, _ test: BulkTest?, of path: Path = .vip, against reference: Path = .direct) -> Double
    {
        let (vip, direct) =
            test.map { test in
                (
                    bulkMedian(delivery, test, path, \.bitsPerSecond),
                    bulkMedian(delivery, test, reference, \.bitsPerSecond)
                )
            } ?? (webMedian(delivery, path, \.requestsPerSecond), webMedian(delivery, reference, \.requestsPerSecond))
        return direct > 0 ? vip / direct : 0
    }

    /// "0.98x" against straight traffic the switch floods, where it was measured; "-" elsewhere.
    func floodedRatioText(_ ratio: Double) -> String { ratio > 0 ? String(format: "%.2fx", ratio) : "-" }

    var deliveries: [String] {
        (web.map(\.delivery) + kills.map(\.delivery)).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    var table: String {
        let runs = Set(web.map(\.repetition)).count
        var table = TextTable(
            title: "Real applications through the VIP against straight to server 1 (medians of \(runs) runs of "
                + "\(seconds) s; wrk \(connections) connections; iperf3 UDP at "
                + "\(udpBitsPerSecond / 1_000_000) Mbit/s; CPU: cores busy on the whole machine, the lbnodes' share)",
            header: [
                "delivery", "test", "through the VIP", "direct", "VIP / direct", "VIP / direct, flooded",
                "VIP: errors, p99, loss", "CPU cores, VIP", "CPU cores, direct",
            ])
        for delivery in deliveries {
            table.add(webRow(delivery, "wrk against nginx", vip: .vip, direct: .direct))
            if webMedian(delivery, .directClientPerServer, \.requestsPerSecond) > 0 {
                table.add(
                    webRow(
                        delivery, "wrk, a client per server", vip: .vipClientPerServer, direct: .directClientPerServer))
            }
            let latencies = { (path: Path) in self.latency.filter { $0.delivery == delivery && $0.path == path } }
            let (vipLatency, directLatency, floodedLatency) = (
                Self.median(latencies(.vip).map(\.result.medianMicroseconds)),
                Self.median(latencies(.direct).map(\.result.medianMicroseconds)),
                Self.median(latencies(.directFlooded).map(\.result.medianMicroseconds))
            )
            table.add([
                delivery, "one request at a time (median)", String(format: "%.0f µs", vipLatency),
                String(format: "%.0f µs", directLatency),
                String(format: "%.2fx", directLatency > 0 ? vipLatency / directLatency : 0),
                floodedRatioText(floodedLatency > 0 ? vipLatency / floodedLatency : 0),
                String(
                    format: "p99 %.0f µs (direct %.0f µs)", Self.median(latencies(.vip).map(\.result.p99Microseconds)),
                    Self.median(latencies(.direct).map(\.result.p99Microseconds))),
                "-", "-",
            ])
            for test in BulkTest.allCases {
                let retransmits = bulkMedian(delivery, test, .vip) { Double($0.retransmits) }
                table.add([
                    delivery, "iperf3 \(test.rawValue)",
                    String(format: "%.0f Mbit/s", bulkMedian(delivery, test, .vip, \.bitsPerSecond) / 1e6),
                    String(format: "%.0f Mbit/s", bulkMedian(delivery, test, .direct, \.bitsPerSecond) / 1e6),
                    String(format: "%.2fx", ratio(delivery, test)),
                    floodedRatioText(ratio(delivery, test, against: .directFlooded)),
                    test == .udp
                        ? String(
                            format: "%.3f %% lost (direct %.3f %%)", bulkMedian(delivery, test, .vip, \.lostPercent),
                            bulkMedian(delivery, test, .direct, \.lostPercent))
                        : String(format: "%.0f retransmits", retransmits),
                    cpuText(delivery, test, .vip), cpuText(delivery, test, .direct),
                ])
            }
            for rest in atRest ?? [] where rest.delivery == delivery {
                table.add([
                    delivery, String(format: "at rest for %.0f s (heartbeats only)", rest.seconds), "-", "-", "-", "-",
                    "-",
                    String(format: "%.2f (lbnodes %.2f)", rest.cpu.machineCores, rest.cpu.lbnodeCores), "-",
                ])
            }
            for kill in kills where kill.delivery == delivery {
                table.add([
                    delivery,
                    "wrk, node \(victim) \(kill.restarted == true ? "restarted" : "killed") after "
                        + "\(String(format: "%.1f", kill.killedAfterSeconds)) s of \(kill.seconds)",
                    String(format: "%.0f req/s", kill.result.requestsPerSecond), "-", "-", "-",
                    String(format: "%d errors, p99 %.2f ms", kill.result.errors, kill.result.p99Milliseconds)
                        + (kill.survivorsAgreed ? "" : "; the nodes did not agree on a view"), "-", "-",
                ])
            }
        }
        guard let profiles, !profiles.isEmpty else { return table.rendered }
        return table.rendered + "\n\n" + Self.profileTable(profiles)
    }

    /// A table row of wrk: the medians through the VIP (`vip`) and straight (`direct`), errors, p99 and CPU.
    private func webRow(_ delivery: String, _ test: String, vip: Path, direct: Path) -> [String] {
        let errors = web.filter { $0.delivery == delivery && $0.path == vip }.map(\.result.errors).reduce(0, +)
        return [
            delivery, test, String(format: "%.0f req/s", webMedian(delivery, vip, \.requestsPerSecond)),
            String(format: "%.0f req/s", webMedian(delivery, direct, \.requestsPerSecond)),
            String(format: "%.2fx", ratio(delivery, nil, of: vip, against: direct)),
            vip == .vip ? floodedRatioText(ratio(delivery, nil, against: .directFlooded)) : "-",
            String(
                format: "%d errors, p99 %.2f ms (direct %.2f ms)", errors, webMedian(delivery, vip, \.p99Milliseconds),
                webMedian(delivery, direct, \.p99Milliseconds)),
            cpuText(delivery, nil, vip), cpuText(delivery, nil, direct),
        ]
    }

    /// Per path: what a request cost the machine, where its time went, and the engine's heaviest functions.
    static func profileTable(_ profiles: [Profiled]) -> String {
        var table = TextTable(
            title: "Where the time goes: the machine during wrk (perf, every CPU, idle excluded)",
            header: [
                "delivery", "path", "switches/req", "syscalls/req", "CPU µs/req", "kernel %", "busy time by thread",
                "engine thread's top functions",
            ])
        let f = { (value: Double) in String(format: "%.1f", value) }
        for item in profiles {
            let profile = item.profile
            let threads = profile.busyShareByThread.sorted { $0.value > $1.value }.prefix(6)
                .map { "\($0.key) \(f($0.value))" }.joined(separator: ", ")
            let functions = profile.engineTopFunctions.prefix(5).map { "\($0.name) \(f($0.percent))" }
                .joined(separator: ", ")
            table.add([
                item.delivery, item.path.rawValue, f(profile.contextSwitchesPerRequest),
                f(profile.systemCallsPerRequest), f(profile.cpuMicrosecondsPerRequest), f(profile.kernelShare),
                threads, functions.isEmpty ? "-" : functions,
            ])
        }
        return table.rendered
    }
}
