import Foundation
import Glibc
import Hashing
import RouteSetup
import Synchronization
import TapEngine

/// The farm's demo application: a UDP echo and a TCP echo on one port, answering every request with the server's ID
/// (two bytes, big-endian) followed by the request's bytes, so a client can count replies per server.
///
/// Its sockets are bound to the VIP with `IP_FREEBIND`, so they can open before the VIP exists and every reply leaves
/// from the VIP (a UDP socket bound to the wildcard would answer from the server's own address). They belong to the
/// network namespace of the thread that creates the server; the loop may run on any thread.
public final class EchoServer: @unchecked Sendable {
    public let id: UInt16
    public let port: UInt16
    private let datagram: Int32
    private let listener: Int32
    private let stopRequested = Mutex(false)
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// Opens the sockets. The corresponding C functions are `socket`, `setsockopt`, `bind` and `listen`.
    public init(id: UInt16, vip: IPAddress, port: UInt16) throws(SystemCallError) {
        self.id = id
        self.port = port
        datagram = try Self.openSocket(type: SOCK_DGRAM, vip: vip, port: port)
        do {
            listener = try Self.openSocket(type: SOCK_STREAM, vip: vip, port: port)
        } catch {
            close(datagram)
            throw error
        }
        guard listen(listener, 1024) == 0 else {
            let error = SystemCallError("listen", "listen on TCP port \(port)")
            close(datagram)
            close(listener)
            throw error
        }
    }

    deinit {
        stop()
        close(datagram)
        close(listener)
    }

    /// An echo server opened in `namespace` and serving on a thread of its own.
    public static func started(in namespace: NetworkNamespace, id: Int, vip: IPAddress, port: UInt16) throws -> EchoServer {
        let server = try namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in try EchoServer(id: UInt16(id), vip: vip, port: port) }
        }.get()
        server.start()
        return server
    }

    /// Serves on a thread of its own until `stop()`.
    public func start() {
        let thread = Thread { [self] in
            serve()
            finished.signal()
        }
        thread.name = "echo-\(id)"
        self.thread = thread
        thread.start()
    }

    /// Stops the loop (within 100 ms) and closes every connection. Safe to call twice.
    public func stop() {
        guard thread != nil else { return }
        stopRequested.withLock { $0 = true }
        finished.wait()
        thread = nil
    }

    /// Serves until `stop()` (or forever, for `lbbench serve`).
    public func serve() {
        var connections: [Int32] = []
        defer { for fd in connections { close(fd) } }
        var buffer = [UInt8](repeating: 0, count: 65536 + 2)
        withUnsafeBytes(of: id.bigEndian) {
            buffer[0] = $0[0]; buffer[1] = $0[1]
        }
        while !stopRequested.withLock({ $0 }) {
            var polled = [pollfd(fd: datagram, events: Int16(POLLIN), revents: 0)]
            polled.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            polled += connections.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&polled, nfds_t(polled.count), 100) > 0 else { continue }
            if polled[0].revents != 0 { echoDatagrams(&buffer) }
            if polled[1].revents != 0 {
                let fd = accept(listener, nil, nil)
                if fd >= 0 {
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                    connections.append(fd)
                }
            }
            var closed: Set<Int32> = []
            for entry in polled.dropFirst(2) where entry.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { recv(entry.fd, $0.baseAddress! + 2, 65536, 0) }
                if count > 0 {
                    _ = buffer.withUnsafeBytes { send(entry.fd, $0.baseAddress!, count + 2, Int32(MSG_NOSIGNAL)) }
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    closed.insert(entry.fd)
                }
            }
            for fd in closed { close(fd) }
            connections.removeAll { closed.contains($0) }
        }
    }

    /// Answers every datagram waiting, without blocking.
    private func echoDatagrams(_ buffer: inout [UInt8]) {
        var source = sockaddr_storage()
        while true {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(datagram, bytes.baseAddress! + 2, 65536, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            guard count >= 0 else { return }
            _ = buffer.withUnsafeBytes { bytes in
                withUnsafePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(datagram, bytes.baseAddress!, count + 2, 0, $0, length)
                    }
                }
            }
        }
    }

    /// A socket of `type` bound to `vip:port`, whether or not the VIP is there yet.
    private static func openSocket(type: __socket_type, vip: IPAddress, port: UInt16) throws(SystemCallError) -> Int32 {
        let fd = socket(vip.isIPv4 ? AF_INET : AF_INET6, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", "open an echo socket") }
        var on: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size)
        if vip.isIPv4 {
            setsockopt(fd, Int32(IPPROTO_IP), IP_FREEBIND, &on, size)
        } else {
            setsockopt(fd, Int32(IPPROTO_IPV6), 78 /* IPV6_FREEBIND */, &on, size)
        }
        guard SocketAddress.with(vip, port: port, { bind(fd, $0, $1) }) == 0 else {
            let error = SystemCallError("bind", "bind the echo server to \(vip) port \(port)")
            close(fd)
            throw error
        }
        return fd
    }

    /// The server ID at the start of a reply, and the echoed request after it.
    public static func parseReply(_ reply: [UInt8]) -> (server: Int, payload: ArraySlice<UInt8>)? {
        guard reply.count >= 2 else { return nil }
        return (Int(reply[0]) << 8 | Int(reply[1]), reply[2...])
    }
}
