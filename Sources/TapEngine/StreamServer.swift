import CKernel
import Foundation
import Glibc
import Hashing
import Synchronization

/// A small request/answer server on a Unix or TCP stream socket (the control socket, `/metrics`): each client gets
/// its own short-lived thread, sends one request, gets one answer, and is closed. A client that sends nothing for
/// `timeoutMilliseconds` is dropped, so an idle or slow client blocks nobody else; at most `maxClients` are served at
/// once (more are closed at once); a failed `accept` (out of descriptors, ...) is retried after a pause.
public final class StreamServer: @unchecked Sendable {
    /// Who is at the other end of a Unix socket (nil over TCP).
    public struct Peer: Sendable {
        public let uid: UInt32?
        public let gid: UInt32?
    }

    /// Given the bytes received so far, whether the request is complete.
    public typealias Complete = @Sendable ([UInt8]) -> Bool
    public typealias Handler = @Sendable ([UInt8], Peer) -> [UInt8]

    private let fd: Int32
    private let handler: Handler
    private let complete: Complete
    private let timeoutMilliseconds: Int
    private let maxRequestBytes: Int
    private let maxClients: Int
    private let clients = Mutex(0)
    private let stopped = Mutex(false)
    private let unixPath: String?
    private let finished = DispatchSemaphore(value: 0)

    /// Listens on the Unix socket `path` (replacing a stale one), created with `mode` (no moment with wider access).
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket`, `umask`, `bind`, `chmod`, `listen`.
    public convenience init(
        unixPath path: String, mode: mode_t = 0o600, timeoutMilliseconds: Int = 2000, maxRequestBytes: Int = 512,
        maxClients: Int = 16, complete: @escaping Complete, handler: @escaping Handler
    ) throws(SystemCallError) {
        guard path.utf8.count <= 107 else {
            throw SystemCallError("bind", "bind the control socket \(path): longer than 107 bytes", errno: ENAMETOOLONG)
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", "open the control socket") }
        let previous = umask(0o777 & ~mode)
        let bound = Self.withUnixAddress(path) { bind(fd, $0, $1) }
        umask(previous)
        guard bound == 0, chmod(path, mode) == 0, listen(fd, 64) == 0 else {
            let error = SystemCallError("bind", "listen on the control socket \(path)")
            close(fd)
            throw error
        }
        self.init(
            fd: fd, unixPath: path, name: "vipfarm-control", timeoutMilliseconds: timeoutMilliseconds,
            maxRequestBytes: maxRequestBytes, maxClients: maxClients, complete: complete, handler: handler)
    }

    /// Listens on TCP `address:port`.
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket`, `setsockopt`, `bind`, `listen`.
    public convenience init(
        address: IPAddress, port: UInt16, timeoutMilliseconds: Int = 2000, maxRequestBytes: Int = 2048,
        maxClients: Int = 16, complete: @escaping Complete, handler: @escaping Handler
    ) throws(SystemCallError) {
        let fd = socket(address.isIPv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", "open a TCP socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard SocketAddress.with(address, port: port, { bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
            let error = SystemCallError("bind", "listen on \(address) port \(port)")
            close(fd)
            throw error
        }
        self.init(
            fd: fd, unixPath: nil, name: "vipfarm-metrics", timeoutMilliseconds: timeoutMilliseconds,
            maxRequestBytes: maxRequestBytes, maxClients: maxClients, complete: complete, handler: handler)
    }

    /// Serves on the listening socket `fd` from a thread named `name`.
    private init(
        fd: Int32, unixPath: String?, name: String, timeoutMilliseconds: Int, maxRequestBytes: Int, maxClients: Int,
        complete: @escaping Complete, handler: @escaping Handler
    ) {
        self.fd = fd
        self.unixPath = unixPath
        self.handler = handler
        self.complete = complete
        self.timeoutMilliseconds = timeoutMilliseconds
        self.maxRequestBytes = maxRequestBytes
        self.maxClients = maxClients
        start(name: name)
    }

    /// Stops accepting (clients being served finish on their own) and removes the Unix socket file.
    public func stop() {
        guard !stopped.withLock({ value in defer { value = true }; return value }) else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        finished.wait()
        close(fd)
        if let unixPath { unlink(unixPath) }
    }

    deinit { stop() }

    private func start(name: String) {
        let thread = Thread { [self] in
            acceptLoop()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let client = accept(fd, nil, nil)
            guard client >= 0 else {
                if errno != EINTR && !stopped.withLock({ $0 }) { usleep(100_000) }  // EMFILE and the like: pause
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)  // (accept4 is hidden behind _GNU_SOURCE)
            let admitted = clients.withLock { count in
                guard count < maxClients else { return false }
                count += 1
                return true
            }
            guard admitted else {
                close(client)
                continue
            }
            let thread = Thread { [self] in
                serve(client)
                close(client)
                clients.withLock { $0 -= 1 }
            }
            thread.name = "vipfarm-client"
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        let peer =
            unixPath != nil && vipfarm_peer_credentials(client, &uid, &gid) == 0
            ? Peer(uid: uid, gid: gid) : Peer(uid: nil, gid: nil)
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while request.count < maxRequestBytes && !complete(request) && ContinuousClock.now < deadline {
            let count = recv(client, &buffer, min(buffer.count, maxRequestBytes - request.count), 0)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            request += buffer[0..<count]
        }
        guard complete(request) || request.count >= maxRequestBytes else { return }
        let answer = handler(request, peer)
        var sent = 0
        while sent < answer.count {
            let count = answer[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            sent += count
        }
    }

    /// `sockaddr_un` for `path`, lent to a C call.
    public static func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107)) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
