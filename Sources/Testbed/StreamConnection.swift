import Glibc
import Hashing
import TapEngine

/// A TCP connection to the echo server through the VIP, as a client holds one open across a failover or a handover.
/// It belongs to the network namespace of the thread that opens it.
public final class StreamConnection {
    /// What became of one request.
    public enum Outcome: Hashable {
        /// The echo came back from this server.
        case answered(server: Int)
        /// The connection was reset (RST), or refused.
        case reset
        /// Nothing came back in time; the connection may still recover.
        case timedOut
    }

    /// The connected, non-blocking socket.
    public let socket: Socket

    /// Connects within `timeoutMilliseconds`. The corresponding C functions are `socket`, `connect` and `poll`.
    public init(to address: IPAddress, port: UInt16, timeoutMilliseconds: Int32 = 1000, interface: String? = nil)
        throws(SystemCallError)
    {
        socket = try Socket(for: address, type: SOCK_STREAM, nonBlocking: true)
        if let interface { try socket.bind(toDevice: interface) }
        try socket.setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1, "send requests without delay")
        try socket.connect(to: address, port: port, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// What one read brought.
    private enum Read {
        case bytes(ArraySlice<UInt8>)
        /// Nothing within the timeout.
        case silent
        /// The peer closed the connection (`count` 0).
        case closed
        /// Reset, or another error.
        case failed
    }

    /// Waits up to `timeoutMilliseconds` for data and reads what came.
    private func read(_ buffer: inout [UInt8], timeoutMilliseconds: Int32) -> Read {
        guard (try? socket.wait(for: Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds)) == true else {
            return .silent
        }
        do {
            let count = try buffer.withUnsafeMutableBytes { bytes throws(SystemCallError) in
                try socket.receive(into: bytes)
            }
            guard let count else { return .bytes([]) }
            return count == 0 ? .closed : .bytes(buffer[0..<count])
        } catch {
            return .failed
        }
    }

    /// Sends `payload` and waits up to `timeoutMilliseconds` for its echo.
    public func request(_ payload: [UInt8], timeoutMilliseconds: Int32 = 500) -> Outcome {
        guard socket.sendAll(payload) else { return .reset }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while reply.count < payload.count + 2 {
            switch read(&buffer, timeoutMilliseconds: timeoutMilliseconds) {
            case .bytes(let bytes): reply += bytes
            case .silent: return .timedOut
            case .closed, .failed: return .reset
            }
        }
        guard let parsed = EchoServer.parseReply(reply), parsed.payload.elementsEqual(payload) else { return .reset }
        return .answered(server: parsed.server)
    }

    /// Sends `bytes` and reads until what came back satisfies `isComplete` (a keep-alive HTTP exchange); nil on a
    /// reset or after `timeoutMilliseconds` of silence.
    public func exchange(
        _ bytes: [UInt8], timeoutMilliseconds: Int32 = 2000, until isComplete: ([UInt8]) -> Bool
    ) -> [UInt8]? {
        guard socket.sendAll(bytes) else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !isComplete(reply) {
            guard case .bytes(let bytes) = read(&buffer, timeoutMilliseconds: timeoutMilliseconds) else { return nil }
            reply += bytes
        }
        return reply
    }

    /// Sends `bytes` and reads until the peer closes (an HTTP/1.0 exchange); nil on a reset or after
    /// `timeoutMilliseconds` of silence.
    public func exchangeUntilClosed(_ bytes: [UInt8], timeoutMilliseconds: Int32 = 2000) -> [UInt8]? {
        guard socket.sendAll(bytes) else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            switch read(&buffer, timeoutMilliseconds: timeoutMilliseconds) {
            case .bytes(let bytes): reply += bytes
            case .closed: return reply
            case .silent, .failed: return nil
            }
        }
    }
}
