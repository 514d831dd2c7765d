import CKernel
import Glibc
import Hashing

/// A blocking UDP socket (IPv4 or IPv6): the applications and probes of the testbed. It belongs to the network
/// namespace of the thread that creates it.
public final class DatagramSocket {
    private let fd: Int32
    private let isIPv4: Bool

    /// Opens a socket bound to `address:port`.
    ///
    /// - Parameter receiveBufferBytes: a receive buffer above the system limit (`SO_RCVBUFFORCE`, root), for sinks
    ///   that take bursts.
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket`, `setsockopt` and `bind`.
    public init(bindTo address: IPAddress, port: UInt16, receiveBufferBytes: Int32? = nil) throws(SystemCallError) {
        isIPv4 = address.isIPv4
        fd = socket(isIPv4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", "open a UDP socket") }
        if var size = receiveBufferBytes,
            setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0
        {
            let error = SystemCallError("setsockopt(SO_RCVBUFFORCE)", "set a \(size)-byte receive buffer")
            close(fd)
            throw error
        }
        let result = SocketAddress.with(address, port: port) { bind(fd, $0, $1) }
        guard result == 0 else {
            let error = SystemCallError("bind", "bind a UDP socket to \(address) port \(port)")
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
    }

    /// Sends one datagram. The corresponding C function is `sendto`.
    public func send(_ bytes: [UInt8], to address: IPAddress, port: UInt16) throws(SystemCallError) {
        let sent = SocketAddress.with(address, port: port) { sendto(fd, bytes, bytes.count, 0, $0, $1) }
        guard sent == bytes.count else { throw SystemCallError("sendto", "send to \(address) port \(port)") }
    }

    /// The next datagram, or `nil` after `timeoutMilliseconds` without one. The corresponding C functions are
    /// `poll` and `recv`.
    public func receive(timeoutMilliseconds: Int32) throws(SystemCallError) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, timeoutMilliseconds)
        guard ready >= 0 || errno == EINTR else { throw SystemCallError("poll", "wait for a datagram") }
        guard ready > 0 else { return nil }
        // Received straight into the array, without zeroing 64 KB first (a node takes hundreds of heartbeats a second).
        var count = 0
        let datagram = [UInt8](unsafeUninitializedCapacity: 65536) { buffer, initialized in
            count = recv(fd, buffer.baseAddress, buffer.count, 0)
            initialized = max(count, 0)
        }
        guard count >= 0 else { throw SystemCallError("recv", "receive a datagram") }
        return datagram
    }

    /// Counts datagrams (without keeping them) until none arrives for `quietMilliseconds` after `deadline`: the sink
    /// of a benchmark. One buffer is reused for every datagram. The corresponding C functions are `poll` and `recv`.
    public func count(untilQuietAfter deadline: ContinuousClock.Instant, quietMilliseconds: Int32) -> Int {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var total = 0
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&poller, 1, quietMilliseconds)
            if ready <= 0 {
                if ContinuousClock.now >= deadline { return total }
                continue
            }
            while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) >= 0 { total += 1 }
        }
    }
}
