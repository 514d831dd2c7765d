import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testing

@testable import Testbed
@testable import lbnode

/// Real applications through the VIP on hosts with the kernel's offloads (partial checksums, TSO, GRO on the
/// servers' NICs): Debian's nginx under wrk, iperf3 bulk transfers both ways, on a three-server farm of `lbnode run`.
@Suite(privileged, .serialized)
struct ApplicationsEndToEndTests {
    static func farm(delivery: Delivery, kernelDelivery: Bool = true, handoverSeconds: Int? = nil) throws
        -> VirtualFarm
    {
        var options = VirtualFarm.Options(delivery: .fixed(delivery), realApplications: true)
        options.kernelDelivery = kernelDelivery
        options.handoverSeconds = handoverSeconds
        options.heartbeatIntervalMilliseconds = 20  // the suites' margin on two cores, in debug builds
        options.deadAfter = 5
        let farm = try VirtualFarm(options)
        #expect(farm.testbed.description.offloads == .kernelDefaults)
        return farm
    }

    /// TCP segments with a bad checksum that a server's stack dropped (`TcpInCsumErrors`), summed over servers.
    static func checksumErrors(_ farm: VirtualFarm) throws -> Int {
        try farm.testbed.servers.map { server in
            try server.namespace.run { () throws(NetlinkError) -> Int in
                let snmp = procFile("/proc/thread-self/net/snmp")
                let tcp = snmp.split(separator: "\n").filter { $0.hasPrefix("Tcp:") }.map { $0.split(separator: " ") }
                guard tcp.count == 2, let column = tcp[0].firstIndex(of: "InCsumErrors") else { return -1 }
                return Int(tcp[1][column]) ?? -1
            }
        }.reduce(0, +)
    }

    /// Which server answered each of `count` HTTP/1.0 requests, each on a connection of its own.
    static func pageServers(_ farm: VirtualFarm, count: Int) throws -> [String: Int] {
        try farm.testbed.clients[0].namespace.run { () throws(NetlinkError) in
            var servers: [String: Int] = [:]
            for _ in 0..<count {
                let connection = try? StreamConnection(to: farm.vip, port: ApplicationServers.httpPort)
                let reply = connection?.exchangeUntilClosed(Array("GET / HTTP/1.0\r\n\r\n".utf8))
                let body = reply.map { String(decoding: $0, as: UTF8.self) } ?? ""
                let server = body.components(separatedBy: "\r\n\r\n").last?.trimmingCharacters(in: .newlines) ?? ""
                servers[server, default: 0] += 1
            }
            return servers
        }
    }

    /// With kernel delivery, the buckets the first node to start kept are the kernel's (the others are in the joins'
    /// handover windows): it and the engine share the load. Without, the engines take every frame, merged ones too.
    @Test(arguments: [Delivery.directed, .flood], [true, false])
    func nginxAndIperf3ThroughTheVIP(delivery: Delivery, kernelDelivery: Bool) throws {
        let farm = try Self.farm(delivery: delivery, kernelDelivery: kernelDelivery)
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]), "\(farm.log(1))")
        let client = farm.testbed.clients[0].namespace
        let vip = "\(farm.vip)"

        // Every page answered, by every server, on connections of their own.
        let servers = try Self.pageServers(farm, count: 60)
        #expect(Set(servers.keys) == ["server 1", "server 2", "server 3"], "\(servers)")

        // wrk's keep-alive load: no error.
        let web = try Wrk.run(in: client, url: "http://\(vip)/", seconds: 2)
        #expect(web.errors == 0 && web.requests > 1000, "\(web)")

        // Bulk TCP both ways (64 KB merged frames with partial checksums): the transfer ends within the timeout
        // (frames the stack dropped would leave it crawling at a few hundred kbit/s). iperf3's receiver stops
        // counting as the sender finishes, so it reports less than was sent (down to 0.87 seen).
        let bytes = 64 << 20
        let upload = try Iperf3.run(in: client, server: vip, bytes: bytes, timeout: 30)
        #expect(upload.bytes >= 0.8 * Double(bytes), "\(upload)")
        let download = try Iperf3.run(in: client, server: vip, download: true, bytes: bytes, timeout: 30)
        #expect(download.bytes >= 0.8 * Double(bytes), "\(download)")
        #expect(try Self.checksumErrors(farm) == 0)

        let statuses = try (1...3).map {
            try JSONDecoder().decode(NodeStatus.self, from: Data(try farm.control(["status", "--json"], node: $0).utf8))
        }
        let taken = statuses.map { $0.deliveredInKernel + $0.forwardedInKernel }.reduce(0, +)
        guard !kernelDelivery else {
            #expect(taken > 0, "the kernel delivered nothing")
            return
        }
        // The engines saw the offloads, and say so: merged TCP frames and partial checksums.
        let offloads = statuses.map(\.offloads)
        #expect(taken == 0)
        #expect(offloads.map { $0["merged_tcp4"] ?? 0 }.reduce(0, +) > 0, "\(offloads)")
        #expect(offloads.map { $0["partial_checksum"] ?? 0 }.reduce(0, +) > 0, "\(offloads)")
    }

    /// iperf3 over UDP through the VIP once every bucket is in steady ownership (the kernel decides the datagrams and
    /// the control connection's segments): its control connection and its datagrams share a port rule with
    /// `affinity: single`, so they reach one server. A datagram that reaches another is refused there (no socket),
    /// and iperf3 fails with "Connection refused". The joins' handover windows last 3 s instead of 30: steady
    /// ownership is the same either way, and reached sooner.
    @Test(arguments: [Delivery.directed, .flood])
    func iperf3DatagramsReachTheServerOfTheirControlConnection(delivery: Delivery) throws {
        let farm = try Self.farm(delivery: delivery, handoverSeconds: 3)
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]), "\(farm.log(1))")
        #expect(farm.waitForHandoversToEnd(nodes: [1, 2, 3]), "\(farm.logs)")
        let client = farm.testbed.clients[0].namespace
        for run in 1...10 {
            do {
                let result = try Iperf3.run(in: client, server: "\(farm.vip)", seconds: 1, udpBitsPerSecond: 50_000_000)
                #expect(result.bytes > 0, "run \(run): \(result)")
            } catch {
                Issue.record("run \(run): \(error)\n\(farm.logs)")
                break
            }
        }
    }
}
