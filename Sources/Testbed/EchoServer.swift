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
    private let datagram: Socket
    private let listener: Socket
    private let stopRequested = Mutex(false)
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// Opens the sockets. The corresponding C functions are `socket`, `setsockopt`, `bind` and `listen`.
    public init(id: UInt16, vip: IPAddress, port: UInt16) throws(SystemCallError) {
        self.id = id
        self.port = port
        datagram = try Self.openSocket(type: SOCK_DGRAM, vip: vip, port: port)
        // A queue as deep as a UDP service's in production (DNS servers ask for megabytes): the default (~200 small
        // datagrams) overflows when a burst of a thousand requests meets this thread a few ms late, and a request
        // the farm delivered would count as lost. `VirtualFarm.udpQueueDrops` counts what still overflows.
        if (try? datagram.setOption(SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20, "")) == nil {
            try datagram.setOption(SOL_SOCKET, SO_RCVBUF, 4 << 20, "size the echo server's datagram queue")
        }
        listener = try Self.openSocket(type: SOCK_STREAM, vip: vip, port: port)
        try listener.listen(backlog: 1024)
        try listener.setBlocking(false)
    }

    deinit {
        stop()
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
        var connections: [Socket] = []
        var buffer = [UInt8](repeating: 0, count: 65536 + 2)
        withUnsafeBytes(of: id.bigEndian) {
            buffer[0] = $0[0]; buffer[1] = $0[1]
        }
        while !stopRequested.withLock({ $0 }) {
            var polled = ([datagram, listener] + connections).map {
                pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0)
            }
            guard (try? Socket.poll(&polled, timeoutMilliseconds: 100)) ?? 0 > 0 else { continue }
            if polled[0].revents != 0 { echoDatagrams(&buffer) }
            if polled[1].revents != 0, let client = try? listener.accept(), (try? client.setBlocking(false)) != nil {
                connections.append(client)
            }
            var closed: Set<Int32> = []
            for (entry, connection) in zip(polled.dropFirst(2), connections) where entry.revents != 0 {
                do {
                    let received = try buffer.withUnsafeMutableBytes { bytes throws(SystemCallError) in
                        try connection.receive(into: UnsafeMutableRawBufferPointer(rebasing: bytes[2...]))
                    }
                    guard let count = received else { continue }
                    if count == 0 || !connection.sendAll(Array(buffer[0..<count + 2])) {
                        closed.insert(connection.descriptor)
                    }
                } catch {
                    closed.insert(connection.descriptor)
                }
            }
            connections.removeAll { closed.contains($0.descriptor) }
        }
    }

    /// Answers every datagram waiting, without blocking.
    private func echoDatagrams(_ buffer: inout [UInt8]) {
        var source = sockaddr_storage()
        while true {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let received = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &source) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                        try? SystemCall.unlessWouldBlock("recvfrom", "read an echo request") {
                            recvfrom(datagram.descriptor, bytes.baseAddress! + 2, 65536, Int32(MSG_DONTWAIT), address, &length)
                        }
                    }
                }
            }
            guard let count = received ?? nil else { return }
            _ = buffer.withUnsafeBytes { bytes in
                withUnsafePointer(to: &source) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                        try? SystemCall.unlessWouldBlock("sendto", "send an echo answer") {
                            sendto(datagram.descriptor, bytes.baseAddress!, count + 2, 0, address, length)
                        }
                    }
                }
            }
        }
    }

    /// A socket of `type` bound to `vip:port`, whether or not the VIP is there yet.
    private static func openSocket(type: __socket_type, vip: IPAddress, port: UInt16) throws(SystemCallError) -> Socket {
        let socket = try Socket(for: vip, type: type)
        try socket.setOption(SOL_SOCKET, SO_REUSEADDR, 1, "reuse the echo port")
        if vip.isIPv4 {
            try socket.setOption(Int32(IPPROTO_IP), IP_FREEBIND, 1, "bind the echo server before the VIP exists")
        } else {
            try socket.setOption(Int32(IPPROTO_IPV6), 78 /* IPV6_FREEBIND */, 1, "bind before the VIP exists")
        }
        try socket.bind(vip, port: port)
        return socket
    }

    /// The server ID at the start of a reply, and the echoed request after it.
    public static func parseReply(_ reply: [UInt8]) -> (server: Int, payload: ArraySlice<UInt8>)? {
        guard reply.count >= 2 else { return nil }
        return (Int(reply[0]) << 8 | Int(reply[1]), reply[2...])
    }
}
