import CKernel
import Glibc
import Hashing
import Synchronization

/// A socket descriptor that closes itself, with the calls lbnode and the testbed make on it: each retries `EINTR` and
/// throws `SystemCallError` (see `SystemCall`). Non-blocking calls that would wait return nil instead. (Sendable: the
/// descriptor never changes, and the kernel orders calls from several threads.)
public final class Socket: @unchecked Sendable {
    public let descriptor: Int32
    private let closed = Atomic(false)

    /// Opens a socket (close-on-exec). The corresponding C function is `socket`.
    public init(family: Int32, type: __socket_type, protocol: Int32 = 0, nonBlocking: Bool = false) throws(SystemCallError) {
        let flags = Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        descriptor = try SystemCall.retrying("socket", "open a socket") {
            Glibc.socket(family, Int32(type.rawValue) | flags, `protocol`)
        }
    }

    /// A socket of `address`'s family.
    public convenience init(for address: IPAddress, type: __socket_type, nonBlocking: Bool = false) throws(SystemCallError) {
        try self.init(family: address.isIPv4 ? AF_INET : AF_INET6, type: type, nonBlocking: nonBlocking)
    }

    /// Takes ownership of an open descriptor.
    public init(adopting descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close()
    }

    /// Closes the descriptor now rather than when the last reference goes (once; later calls fail with `EBADF`).
    public func close() {
        if !closed.exchange(true, ordering: .relaxed) { Glibc.close(descriptor) }
    }

    /// Sets an integer option. The corresponding C function is `setsockopt`.
    public func setOption(_ level: Int32, _ name: Int32, _ value: Int32, _ operation: @autoclosure () -> String)
        throws(SystemCallError)
    {
        var value = value
        try SystemCall.retrying("setsockopt", operation()) {
            setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Sets an option whose value is a C struct or array (`value`'s bytes, as they are in memory). The corresponding C
    /// function is `setsockopt`.
    public func setOption<Value>(_ level: Int32, _ name: Int32, bytes value: Value, _ operation: @autoclosure () -> String)
        throws(SystemCallError)
    {
        _ = try withUnsafeBytes(of: value) { bytes throws(SystemCallError) in
            try SystemCall.retrying("setsockopt", operation()) {
                setsockopt(descriptor, level, name, bytes.baseAddress, socklen_t(bytes.count))
            }
        }
    }

    /// Send and receive calls give up after `milliseconds` (`SO_SNDTIMEO`, `SO_RCVTIMEO`).
    public func setTimeouts(milliseconds: Int) throws(SystemCallError) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        for name in [SO_RCVTIMEO, SO_SNDTIMEO] {
            try SystemCall.retrying("setsockopt", "set a socket timeout") {
                setsockopt(descriptor, SOL_SOCKET, name, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
        }
    }

    /// Whether calls on this socket wait (blocking) or return at once. The corresponding C function is `fcntl`.
    public func setBlocking(_ blocking: Bool) throws(SystemCallError) {
        let flags = try SystemCall.retrying("fcntl", "read a socket's flags") { fcntl(descriptor, F_GETFL) }
        try SystemCall.retrying("fcntl", "set a socket's flags") {
            fcntl(descriptor, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK)
        }
    }

    /// `SO_BINDTODEVICE`: the socket sends and receives on `interface` only.
    public func bind(toDevice interface: String) throws(SystemCallError) {
        let name = Array(interface.utf8CString)
        try SystemCall.retrying("setsockopt(SO_BINDTODEVICE)", "bind a socket to \(interface)") {
            setsockopt(descriptor, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(name.count))
        }
    }

    public func bind(_ address: IPAddress, port: UInt16) throws(SystemCallError) {
        try SystemCall.retrying("bind", "bind to \(address) port \(port)") {
            SocketAddress.with(address, port: port) { Glibc.bind(descriptor, $0, $1) }
        }
    }

    public func bind(unixPath path: String) throws(SystemCallError) {
        try SystemCall.retrying("bind", "bind to \(path)") {
            Self.withUnixAddress(path) { Glibc.bind(descriptor, $0, $1) }
        }
    }

    public func listen(backlog: Int32 = 64) throws(SystemCallError) {
        try SystemCall.retrying("listen", "listen") { Glibc.listen(descriptor, backlog) }
    }

    /// The next client (close-on-exec), or nil when none waits on a non-blocking socket.
    public func accept() throws(SystemCallError) -> Socket? {
        guard let client = try SystemCall.unlessWouldBlock("accept", "accept a client", {
            Glibc.accept(descriptor, nil, nil)
        }) else { return nil }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)  // (accept4 is hidden behind _GNU_SOURCE)
        return Socket(adopting: client)
    }

    /// Connects within `timeoutMilliseconds` (the socket is non-blocking afterwards).
    ///
    /// - Throws: `SystemCallError` with `ETIMEDOUT` when no answer came in time. The corresponding C functions are
    ///   `connect`, `poll` and `getsockopt(SO_ERROR)`.
    public func connect(to address: IPAddress, port: UInt16, timeoutMilliseconds: Int32) throws(SystemCallError) {
        try setBlocking(false)
        let operation = "connect to \(address) port \(port)"
        let started = SocketAddress.with(address, port: port) { Glibc.connect(descriptor, $0, $1) }
        if started == 0 { return }
        guard errno == EINPROGRESS || errno == EINTR else { throw SystemCallError("connect", operation) }
        guard try wait(for: Int16(POLLOUT), timeoutMilliseconds: timeoutMilliseconds) else {
            throw SystemCallError("connect", operation, errno: ETIMEDOUT)
        }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try SystemCall.retrying("getsockopt", operation) {
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &length)
        }
        guard failure == 0 else { throw SystemCallError("connect", operation, errno: failure) }
    }

    /// Connects a datagram socket: it then talks to `address:port` only.
    public func connect(to address: IPAddress, port: UInt16) throws(SystemCallError) {
        try SystemCall.retrying("connect", "connect to \(address) port \(port)") {
            SocketAddress.with(address, port: port) { Glibc.connect(descriptor, $0, $1) }
        }
    }

    public func connect(unixPath path: String) throws(SystemCallError) {
        try SystemCall.retrying("connect", "connect to \(path)") {
            Self.withUnixAddress(path) { Glibc.connect(descriptor, $0, $1) }
        }
    }

    /// Sends what it can of `bytes` (never raises SIGPIPE); nil when a non-blocking socket is full.
    public func send(_ bytes: UnsafeRawBufferPointer, flags: Int32 = 0) throws(SystemCallError) -> Int? {
        try SystemCall.unlessWouldBlock("send", "send on a socket") {
            Glibc.send(descriptor, bytes.baseAddress, bytes.count, flags | Int32(MSG_NOSIGNAL))
        }
    }

    /// Sends one datagram to `address:port`; false when the kernel refused it (a full queue, no route).
    @discardableResult
    public func send(_ bytes: [UInt8], to address: IPAddress, port: UInt16) -> Bool {
        let sent = try? SystemCall.retrying("sendto", "send a datagram to \(address) port \(port)") {
            SocketAddress.with(address, port: port) { Glibc.sendto(descriptor, bytes, bytes.count, 0, $0, $1) }
        }
        return sent == bytes.count
    }

    /// Sends all of `bytes` (waiting as a blocking socket does); false when the peer went away or timed out.
    public func sendAll(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { try? send($0) }
            guard let count = count ?? nil, count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Receives into `buffer`: the byte count (0: the peer closed), or nil when nothing waits on a non-blocking socket.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) throws(SystemCallError) -> Int? {
        try SystemCall.unlessWouldBlock("recv", "receive on a socket") {
            Glibc.recv(descriptor, buffer.baseAddress, buffer.count, flags)
        }
    }

    /// When the datagram last read from this socket reached it, on CLOCK_REALTIME in ns: the kernel's time, not the
    /// reader's, so a reader that ran late still sees when the reply came. Nil on a socket that has no such time (the
    /// first call switches the stamps on; TCP keeps none). The first socket on a host to ask switches the kernel's
    /// stamps on from a work queue, moments later; a datagram that arrives before that gets the time of its read.
    public var lastArrivalRealtime: Int64? {
        var nanoseconds: Int64 = 0
        return vipfarm_socket_arrival(descriptor, &nanoseconds) == 0 ? nanoseconds : nil
    }

    /// Receives a datagram into `buffer`: its size and its sender, or nil when nothing waits on a non-blocking socket.
    public func receiveFrom(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> (
        count: Int, source: IPAddress
    )? {
        var source = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let count = try withUnsafeMutablePointer(to: &source) { pointer throws(SystemCallError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(SystemCallError) in
                try SystemCall.unlessWouldBlock("recvfrom", "receive a datagram") {
                    Glibc.recvfrom(descriptor, buffer.baseAddress, buffer.count, 0, address, &length)
                }
            }
        }
        return count.map { ($0, SocketAddress.address(of: source)) }
    }

    /// Waits up to `timeoutMilliseconds` for `events`; whether they came.
    public func wait(for events: Int16, timeoutMilliseconds: Int32) throws(SystemCallError) -> Bool {
        var entry = [pollfd(fd: descriptor, events: events, revents: 0)]
        return try Self.poll(&entry, timeoutMilliseconds: timeoutMilliseconds) > 0
    }

    /// `poll` on several descriptors; how many have events.
    public static func poll(_ entries: inout [pollfd], timeoutMilliseconds: Int32) throws(SystemCallError) -> Int {
        let ready = try SystemCall.unlessWouldBlock("poll", "wait for sockets") {
            Glibc.poll(&entries, nfds_t(entries.count), timeoutMilliseconds)
        }
        return Int(ready ?? 0)
    }

    /// The user and group of the process at the other end of a Unix socket (`SO_PEERCRED`), or nil.
    public var peerCredentials: (uid: UInt32, gid: UInt32)? {
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        return vipfarm_peer_credentials(descriptor, &uid, &gid) == 0 ? (uid, gid) : nil
    }

    /// `sockaddr_un` for `path`, lent to a C call.
    static func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107)) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
