import Crypto
import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testing

@testable import lbbench
@testable import lbnode

/// Three servers running `lbnode run` (directed delivery) on a testbed, a client sending from many ports.
@Suite(privileged, .serialized)
struct FarmEndToEndTests {
    static let vip = IPAddress("198.18.0.100")!
    static let port: UInt16 = 9000

    final class Farm {
        let testbed: Testbed
        let directory = NSTemporaryDirectory() + "vipfarm-farm-\(UInt32.random(in: 0...UInt32.max))"
        var processes: [Process] = []
        let keyBytes = (0..<32).map { _ in UInt8.random(in: 0...255) }

        init(delivery: String = "directed") throws {
            testbed = try Testbed(.init(servers: 3, clients: 1))
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(keyBytes).write(to: URL(fileURLWithPath: directory + "/key"))
            for server in testbed.servers {
                let peers = testbed.servers.filter { $0.number != server.number }
                    .map { "  - { id: \($0.number), address: \($0.address.address) }" }.joined(separator: "\n")
                let config = """
                    farm:
                      name: e2e
                      vip: 198.18.0.100
                      delivery: \(delivery)
                      key_file: \(directory)/key
                      # Tests share two cores with other tests, in debug builds: a wider margin than the defaults.
                      heartbeat_interval_ms: 20
                      dead_after: 5
                    node: { id: \(server.number), interface: eth0, address: \(server.address.address) }
                    control_socket: \(directory)/n\(server.number).sock
                    peers:
                    \(peers)
                    """
                try config.write(toFile: "\(directory)/n\(server.number).yaml", atomically: true, encoding: .utf8)
                processes.append(try start(server))
            }
        }

        /// Runs an lbnode client command (status, drain) against node `number`'s control socket.
        func control(_ arguments: [String], node number: Int) throws -> String {
            let process = Process()
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
                .appendingPathComponent("lbnode")
            process.arguments = arguments + ["--socket", "\(directory)/n\(number).sock"]
            process.standardOutput = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text
        }

        /// Starts lbnode in the server's namespace (a process started from a thread inherits its namespace).
        func start(_ server: Testbed.Host) throws -> Process {
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
                .appendingPathComponent("lbnode")
            let log = "\(directory)/log\(server.number)"
            FileManager.default.createFile(atPath: log, contents: nil)
            let result: Result<Process, Error> = try server.namespace.run { () throws(NetlinkError) in
                Result {
                    let process = Process()
                    process.executableURL = binary
                    process.arguments = [
                        "run", "--config", "\(directory)/n\(server.number).yaml", "--state-dir",
                        "\(directory)/state\(server.number)",
                    ]
                    process.standardError = FileHandle(forWritingAtPath: log)
                    process.standardOutput = FileHandle.nullDevice
                    try process.run()
                    return process
                }
            }
            return try result.get()
        }

        func log(_ number: Int) -> String {
            (try? String(contentsOfFile: "\(directory)/log\(number)", encoding: .utf8)) ?? ""
        }

        /// Waits until every log's last view line ends with `view`, then for the engines to take the new state (the
        /// log line comes first; the engine swaps at its next batch) and for one director keepalive (200 ms): while
        /// the nodes were starting, one of them may have been director for a moment and have drawn the switch's
        /// virtual-MAC entry to its port.
        func waitForView(_ view: String, servers: [Int], seconds: Double = 10) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if servers.allSatisfy({
                    log($0).split(separator: "\n").last(where: { $0.contains(" view ") })?
                        .hasSuffix("-> \(view)") == true
                }) {
                    Thread.sleep(forTimeInterval: 0.25)
                    return true
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return false
        }

        func stop() {
            for process in processes where process.isRunning {
                process.terminate()  // SIGTERM, by PID
                process.waitUntilExit()
            }
            testbed.down()
            try? FileManager.default.removeItem(atPath: directory)
        }

        /// Sends datagram `i` from client port 20000 + i for `count` ports, and returns what each server's socket got.
        func exchange(count: Int, servers: [Int]) throws -> [Int: [Int]] {
            let sinks = try servers.map { number in
                try testbed.servers[number - 1].namespace.run { () throws(NetlinkError) in
                    Result { () throws(SystemCallError) in
                        try DatagramSocket(bindTo: FarmEndToEndTests.vip, port: FarmEndToEndTests.port)
                    }
                }.get()
            }
            let client = testbed.clients[0]
            try client.namespace.run { () throws(NetlinkError) in
                Result { () throws(SystemCallError) in
                    let source = IPAddress(bytes: client.address.bytes)!
                    for index in 0..<count {
                        try DatagramSocket(bindTo: source, port: UInt16(20000 + index)).send(
                            Array(String(index).utf8), to: FarmEndToEndTests.vip, port: FarmEndToEndTests.port)
                    }
                }
            }.get()
            var received: [Int: [Int]] = [:]
            for (number, sink) in zip(servers, sinks) {
                var ids: [Int] = []
                while let datagram = try sink.receive(timeoutMilliseconds: 400) {
                    ids.append(Int(String(decoding: datagram, as: UTF8.self))!)
                }
                received[number] = ids
            }
            return received
        }
    }

    /// GET `path` from 127.0.0.1:9946 in the calling thread's namespace; the raw response.
    static func httpGet(_ path: String) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(9946).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return "connect failed: \(errno)" }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        return String(decoding: response, as: UTF8.self)
    }

    static func expectExactlyOnce(_ received: [Int: [Int]], count: Int) {
        let all = received.values.flatMap { $0 }
        #expect(all.count == count, "\(received.mapValues(\.count))")
        #expect(Set(all).count == count)
    }

    @Test func everyRequestOnceThroughStatusDrainAndSigkill() throws {
        let farm = try Farm()
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", servers: [1, 2, 3]), "\(farm.log(1))")
        let before = try farm.exchange(count: 300, servers: [1, 2, 3])
        Self.expectExactlyOnce(before, count: 300)
        #expect(before.values.allSatisfy { $0.count > 50 }, "\(before.mapValues(\.count))")  // all three serve

        // A forged heartbeat (another key) and a validly signed but stale one, both saying node 2 leaves: ignored.
        let stale = Heartbeat(
            sender: NodeID(2)!, state: .left, healthy: true, weight: 100, incarnation: 1,
            sequence: 1, viewDigest: 0, mac: 0)
        let client = farm.testbed.clients[0]
        try client.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                let socket = try DatagramSocket(bindTo: IPAddress(bytes: client.address.bytes)!, port: 7000)
                for (heartbeat, key) in [
                    (stale, SymmetricKey(size: .bits256)), (stale, SymmetricKey(data: farm.keyBytes)),
                ] {
                    try socket.send(heartbeat.encoded(key: key), to: IPAddress("198.18.0.11")!, port: 7946)
                }
            }
        }.get()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(!farm.log(1).contains("node 2 left"))

        // Status over the control socket: three members in the view, a third of the buckets each.
        let status = try JSONDecoder().decode(
            NodeStatus.self,
            from: Data(try farm.control(["status", "--json"], node: 1).utf8))
        #expect(status.members.map(\.id) == [1, 2, 3])
        #expect(status.members.allSatisfy { $0.inView && abs($0.buckets - 4096 / 3) <= 1 })
        #expect(status.leader == 1)
        #expect(status.heartbeatsRejected == ["forged": 1, "replayed": 1])

        // Prometheus metrics on node 1's loopback.
        let metrics = try farm.testbed.servers[0].namespace.run { () throws(NetlinkError) in Self.httpGet("/metrics") }
        #expect(metrics.hasPrefix("HTTP/1.1 200 OK"))
        #expect(metrics.contains("vipfarm_member_in_view{farm=\"e2e\",node=\"1\",member=\"3\",state=\"active\"} 1"))
        #expect(metrics.contains("vipfarm_heartbeats_rejected_total{farm=\"e2e\",node=\"1\",reason=\"forged\"} 1"))

        // SIGHUP reloads the weight live; a change of the farm section is refused and changes nothing.
        let configPath = "\(farm.directory)/n1.yaml"
        let original = try String(contentsOfFile: configPath, encoding: .utf8)
        try original.replacingOccurrences(of: "address: 198.18.0.11 }", with: "address: 198.18.0.11, weight: 200 }")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        kill(farm.processes[0].processIdentifier, SIGHUP)
        #expect(farm.waitForView("{1:200, 2:100, 3:100}", servers: [1, 2, 3], seconds: 2), "\(farm.log(1))")
        try original.replacingOccurrences(of: "vip: 198.18.0.100", with: "vip: 198.18.0.101")
            .replacingOccurrences(of: "address: 198.18.0.11 }", with: "address: 198.18.0.11, weight: 200 }")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        kill(farm.processes[0].processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(farm.log(1).contains("reload refused: the farm section cannot change while running"))

        // Drain node 2: it leaves the view at once (its buckets go to the others) and stops when the time is over.
        _ = try farm.control(["drain", "--timeout", "1"], node: 2)
        #expect(farm.waitForView("{1:200, 3:100}", servers: [1, 3], seconds: 2))
        Self.expectExactlyOnce(try farm.exchange(count: 300, servers: [1, 3]), count: 300)
        farm.processes[1].waitUntilExit()
        #expect(farm.log(2).contains("drain time is over"))

        // SIGKILL node 3: node 1 notices after dead_after (5) intervals of 20 ms and takes its buckets; then every
        // flow is answered by node 1. (The p99 failover time is measured by the benchmark on a quiet machine; tests
        // run beside others, so here the bound is loose.)
        kill(farm.processes[2].processIdentifier, SIGKILL)
        #expect(farm.waitForView("{1:200}", servers: [1], seconds: 2))
        let after = try farm.exchange(count: 300, servers: [1])
        Self.expectExactlyOnce(after, count: 300)
        let death = farm.log(1).split(separator: "\n").first { $0.contains("node 3 is dead: silent for") }
        let silent = death.flatMap { Int($0.split(separator: " ").dropLast().last ?? "") }
        #expect(silent.map { $0 <= 300 } == true, "\(death ?? "no death line")")
    }

    @Test func whenTheDirectorDiesTheNextOneTakesOver() throws {
        let farm = try Farm()
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", servers: [1, 2, 3]), "\(farm.log(1))")
        Self.expectExactlyOnce(try farm.exchange(count: 300, servers: [1, 2, 3]), count: 300)
        // Node 1 is the director (lowest ID). Killed, node 2 directs: it announces from the virtual MAC, the switch
        // moves the MAC to its port, and clients keep their ARP entry.
        kill(farm.processes[0].processIdentifier, SIGKILL)
        #expect(farm.waitForView("{2:100, 3:100}", servers: [2, 3], seconds: 2))
        #expect(farm.log(2).contains("ARP leader and director"))
        Self.expectExactlyOnce(try farm.exchange(count: 300, servers: [2, 3]), count: 300)
    }

    @Test func floodDeliveryServesAndFailsOverToo() throws {
        let farm = try Farm(delivery: "flood")
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", servers: [1, 2, 3]), "\(farm.log(1))")
        let before = try farm.exchange(count: 300, servers: [1, 2, 3])
        Self.expectExactlyOnce(before, count: 300)
        #expect(before.values.allSatisfy { $0.count > 50 }, "\(before.mapValues(\.count))")
        kill(farm.processes[1].processIdentifier, SIGKILL)
        #expect(farm.waitForView("{1:100, 3:100}", servers: [1, 3], seconds: 2))
        Self.expectExactlyOnce(try farm.exchange(count: 300, servers: [1, 3]), count: 300)
    }
}
