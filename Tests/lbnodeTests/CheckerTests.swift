import Foundation
import Glibc
import RouteSetup
import TapEngine
import Testing

@testable import lbnode

/// The probes behind the checkers, on real loopback sockets and a real shell.
struct CheckerTests {
    @Test func tcpProbeSeesAListenerAndItsAbsence() throws {
        // CLOEXEC: the command test beside this one spawns children, which must not inherit the listener.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        // A port below the ephemeral range: the probe's own source port can then never be the same one (a TCP
        // connect to a free ephemeral port on loopback can connect to itself).
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        var port: UInt16 = 0
        for candidate in (20000..<30000).shuffled() {
            address.sin_port = UInt16(candidate).bigEndian
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            if bound == 0 {
                port = UInt16(candidate)
                break
            }
        }
        try #require(port != 0)
        try #require(listen(fd, 4) == 0)
        let loopback = IPPrefix("127.0.0.1")!
        #expect(CheckerRunner.connects(to: loopback, port: port, timeoutMilliseconds: 500))
        shutdown(fd, Int32(SHUT_RDWR))  // (closed once, by the defer: a second close could hit another test's fd)
        #expect(!CheckerRunner.connects(to: loopback, port: port, timeoutMilliseconds: 500))
    }

    @Test func commandProbeUsesTheExitStatusAndTheTimeout() {
        #expect(ShellCommand.succeeds("exit 0", timeoutMilliseconds: 2000))
        #expect(!ShellCommand.succeeds("exit 3", timeoutMilliseconds: 2000))
        let start = Date()
        #expect(!ShellCommand.succeeds("sleep 5", timeoutMilliseconds: 100))
        #expect(Date().timeIntervalSince(start) < 2)
    }

    /// A pipeline that outlives its timeout leaves nothing behind: the whole process group is killed.
    @Test func aTimedOutPipelineLeavesNoProcessBehind() throws {
        // A sleep whose argument no other process has: it must be gone with the shell that started it.
        let marker = "30\(UInt32.random(in: 100_000...999_999))"
        #expect(!ShellCommand.succeeds("sleep \(marker) | cat", timeoutMilliseconds: 200))
        #expect(!ShellCommand.succeeds("sleep \(marker) & wait", timeoutMilliseconds: 200))
        Thread.sleep(forTimeInterval: 0.2)
        let left = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { pid in
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return command.contains(marker)
        }
        #expect(left.isEmpty, "processes left: \(left)")
    }

    /// A checker's health is unknown (failing) until it rises; a reload keeps the health of unchanged checkers.
    @Test func healthIsUnknownUntilTheFirstRiseAndSurvivesAReload() throws {
        let config = try FarmConfig.parse(
            """
            farm: { name: web, vip: 198.18.0.100, key_file: /k }
            node: { id: 1, interface: eth0, address: 198.18.0.11 }
            checkers:
              - { type: command, run: "true", interval_ms: 20, fails: 2, rises: 2 }
            """, file: "test")
        let runner = CheckerRunner(config: config) { _, _ in }
        #expect(!runner.healthy)
        runner.start()
        let deadline = Date().addingTimeInterval(5)
        while !runner.healthy && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        runner.stop()
        #expect(runner.healthy)
        #expect(CheckerRunner(config: config, previous: runner) { _, _ in }.healthy)
    }
}
