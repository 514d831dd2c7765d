import Glibc
import Hashing
import Testing

@testable import TapEngine

/// The system-call layer: failures throw with their errno, a call that would wait returns nil, and the witness pinger
/// hears its own echo on loopback.
struct SocketTests {
    @Test func aFailedCallThrowsWithItsErrnoAndAWouldBlockIsNil() throws {
        #expect {
            try SystemCall.retrying("close", "close nothing") { close(-1) }
        } throws: { ($0 as? SystemCallError)?.errno == EBADF && "\($0)".contains("close nothing: close") }
        let socket = try Socket(family: AF_INET, type: SOCK_DGRAM, nonBlocking: true)
        try socket.bind(IPAddress("127.0.0.1")!, port: 0)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) } == nil)
    }

    @Test func aRefusedConnectionSaysSo() throws {
        let listener = try Socket(family: AF_INET, type: SOCK_STREAM)
        try listener.bind(IPAddress("127.0.0.1")!, port: 0)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener.descriptor, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)  // bound, not listening: connections are refused
        let client = try Socket(family: AF_INET, type: SOCK_STREAM)
        #expect {
            try client.connect(to: IPAddress("127.0.0.1")!, port: port, timeoutMilliseconds: 1000)
        } throws: { ($0 as? SystemCallError)?.errno == ECONNREFUSED }
        try listener.listen()
        let second = try Socket(family: AF_INET, type: SOCK_STREAM)
        try second.connect(to: IPAddress("127.0.0.1")!, port: port, timeoutMilliseconds: 1000)
        #expect(try listener.accept() != nil)
    }

    @Test(privileged) func theWitnessPingerHearsLoopbackAnswerAPingSentAtItsStamp() throws {
        let pinger = try WitnessPinger(target: IPAddress("127.0.0.1")!)
        #expect(pinger.answered() == nil)
        pinger.ping(now: 1234)
        var answered: Int?
        for _ in 0..<100 where answered == nil {
            usleep(1000)
            answered = pinger.answered()
        }
        #expect(answered == 1234)
    }
}
