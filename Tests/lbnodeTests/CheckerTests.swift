import Foundation
import Glibc
import RouteSetup
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
        close(fd)
        #expect(!CheckerRunner.connects(to: loopback, port: port, timeoutMilliseconds: 500))
    }

    @Test func commandProbeUsesTheExitStatusAndTheTimeout() {
        #expect(CheckerRunner.succeeds("exit 0", timeoutMilliseconds: 2000))
        #expect(!CheckerRunner.succeeds("exit 3", timeoutMilliseconds: 2000))
        let start = Date()
        #expect(!CheckerRunner.succeeds("sleep 5", timeoutMilliseconds: 100))
        #expect(Date().timeIntervalSince(start) < 2)
    }
}
