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

    private var fd: Int32

    /// Connects within `timeoutMilliseconds`. The corresponding C functions are `socket`, `connect` and `poll`.
    public init(to address: IPAddress, port: UInt16, timeoutMilliseconds: Int32 = 1000, interface: String? = nil)
        throws(SystemCallError)
    {
        let fd = socket(
            address.isIPv4 ? AF_INET : AF_INET6,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", "open a TCP socket") }
        if let interface {
            do throws(SystemCallError) {
                try FlowProbe.bindToDevice(fd, interface)
            } catch {
                close(fd)
                throw error
            }
        }
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        let started = SocketAddress.with(address, port: port) { connect(fd, $0, $1) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard started == 0 || errno == EINPROGRESS, poll(&poller, 1, timeoutMilliseconds) == 1,
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0, failure == 0
        else {
            let error = SystemCallError(
                "connect", "connect to \(address) port \(port)", errno: failure != 0 ? failure : ETIMEDOUT)
            close(fd)
            throw error
        }
        self.fd = fd
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Hands the (non-blocking) socket over to the caller, who closes it.
    public func detach() -> Int32 {
        defer { fd = -1 }
        return fd
    }

    /// Sends `payload` and waits up to `timeoutMilliseconds` for its echo.
    public func request(_ payload: [UInt8], timeoutMilliseconds: Int32 = 500) -> Outcome {
        guard send(fd, payload, payload.count, Int32(MSG_NOSIGNAL)) == payload.count else { return .reset }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while reply.count < payload.count + 2 {
            guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return .timedOut }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) { return .reset }
            if count > 0 { reply += buffer[0..<count] }
        }
        guard let parsed = EchoServer.parseReply(reply), parsed.payload.elementsEqual(payload) else { return .reset }
        return .answered(server: parsed.server)
    }

    /// Sends `bytes` and reads until what came back satisfies `isComplete` (a keep-alive HTTP exchange); nil on a
    /// reset or after `timeoutMilliseconds` of silence.
    public func exchange(
        _ bytes: [UInt8], timeoutMilliseconds: Int32 = 2000, until isComplete: ([UInt8]) -> Bool
    ) -> [UInt8]? {
        guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while !isComplete(reply) {
            guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return nil }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 || (count < 0 && errno == EAGAIN) else { return nil }
            if count > 0 { reply += buffer[0..<count] }
        }
        return reply
    }

    /// Sends `bytes` and reads until the peer closes (an HTTP/1.0 exchange); nil on a reset or after
    /// `timeoutMilliseconds` of silence.
    public func exchangeUntilClosed(_ bytes: [UInt8], timeoutMilliseconds: Int32 = 2000) -> [UInt8]? {
        guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&poller, 1, timeoutMilliseconds) == 1 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return reply }
            guard count > 0 || errno == EAGAIN else { return nil }
            if count > 0 { reply += buffer[0..<count] }
        }
        return nil
    }
}
