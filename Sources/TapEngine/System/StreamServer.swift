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

        public init(uid: UInt32?, gid: UInt32?) {
            self.uid = uid
            self.gid = gid
        }

        /// Whether the peer's user is in group `group`: its primary group, or a supplementary one in the group
        /// database (`getgrouplist`).
        public func belongs(toGroup group: UInt32) -> Bool {
            guard let uid, let gid else { return false }
            if gid == group { return true }
            var record = passwd()
            var found: UnsafeMutablePointer<passwd>?
            var text = [CChar](repeating: 0, count: 4096)
            guard getpwuid_r(uid, &record, &text, text.count, &found) == 0, found != nil else { return false }
            var groups = [gid_t](repeating: 0, count: 256)
            var count = Int32(groups.count)
            guard getgrouplist(record.pw_name, gid, &groups, &count) >= 0 else { return false }
            return groups.prefix(Int(count)).contains(group)
        }

        /// The ID of the group `name` (a name in the group database, or a number), or nil when there is none.
        public static func groupID(named name: String) -> UInt32? {
            var record = group()
            var found: UnsafeMutablePointer<group>?
            var text = [CChar](repeating: 0, count: 4096)
            if getgrnam_r(name, &record, &text, text.count, &found) == 0, found != nil { return record.gr_gid }
            guard let number = UInt32(name), getgrgid_r(number, &record, &text, text.count, &found) == 0, found != nil
            else { return nil }
            return number
        }
    }

    /// Given the bytes received so far, whether the request is complete.
    public typealias Complete = @Sendable ([UInt8]) -> Bool
    public typealias Handler = @Sendable ([UInt8], Peer) -> [UInt8]

    private let listener: Socket
    private let handler: Handler
    private let complete: Complete
    private let timeoutMilliseconds: Int
    private let maxRequestBytes: Int
    private let maxClients: Int
    private let clients = Mutex(0)
    private let stopped = Mutex(false)
    private let unixPath: String?
    private let finished = DispatchSemaphore(value: 0)

    /// Listens on the Unix socket `path` (replacing a stale one), created with `mode` (no moment with wider access)
    /// and, with `group`, owned by that group.
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket`, `umask`, `bind`, `chown`, `chmod`,
    ///   `listen`.
    public convenience init(
        unixPath path: String, mode: mode_t = 0o600, group: UInt32? = nil, timeoutMilliseconds: Int = 2000,
        maxRequestBytes: Int = 512, maxClients: Int = 16, complete: @escaping Complete, handler: @escaping Handler
    ) throws(SystemCallError) {
        guard path.utf8.count <= 107 else {
            throw SystemCallError("bind", "bind the control socket \(path): longer than 107 bytes", errno: ENAMETOOLONG)
        }
        unlink(path)
        let listener = try Socket(family: AF_UNIX, type: SOCK_STREAM)
        let previous = umask(0o777 & ~mode)
        defer { umask(previous) }
        try listener.bind(unixPath: path)
        if let group {
            try SystemCall.retrying("chown", "give the control socket \(path) to group \(group)") {
                chown(path, UInt32.max, group)
            }
        }
        try SystemCall.retrying("chmod", "set the mode of \(path)") { chmod(path, mode) }
        try listener.listen()
        self.init(
            listener: listener, unixPath: path, name: "vipfarm-control", timeoutMilliseconds: timeoutMilliseconds,
            maxRequestBytes: maxRequestBytes, maxClients: maxClients, complete: complete, handler: handler)
    }

    /// Listens on TCP `address:port`.
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket`, `setsockopt`, `bind`, `listen`.
    public convenience init(
        address: IPAddress, port: UInt16, timeoutMilliseconds: Int = 2000, maxRequestBytes: Int = 2048,
        maxClients: Int = 16, complete: @escaping Complete, handler: @escaping Handler
    ) throws(SystemCallError) {
        let listener = try Socket(for: address, type: SOCK_STREAM)
        try listener.setOption(SOL_SOCKET, SO_REUSEADDR, 1, "reuse the metrics address")
        try listener.bind(address, port: port)
        try listener.listen()
        self.init(
            listener: listener, unixPath: nil, name: "vipfarm-metrics", timeoutMilliseconds: timeoutMilliseconds,
            maxRequestBytes: maxRequestBytes, maxClients: maxClients, complete: complete, handler: handler)
    }

    /// Serves on `listener` from a thread named `name`.
    private init(
        listener: Socket, unixPath: String?, name: String, timeoutMilliseconds: Int, maxRequestBytes: Int,
        maxClients: Int, complete: @escaping Complete, handler: @escaping Handler
    ) {
        self.listener = listener
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
        shutdown(listener.descriptor, Int32(SHUT_RDWR))
        finished.wait()
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
            guard let client = try? listener.accept() else {
                if !stopped.withLock({ $0 }) { usleep(100_000) }  // EMFILE and the like: pause
                continue
            }
            let admitted = clients.withLock { count in
                guard count < maxClients else { return false }
                count += 1
                return true
            }
            guard admitted else { continue }  // closed as `client` goes
            let thread = Thread { [self] in
                serve(client)
                clients.withLock { $0 -= 1 }
            }
            thread.name = "vipfarm-client"
            thread.start()
        }
    }

    private func serve(_ client: Socket) {
        guard (try? client.setTimeouts(milliseconds: timeoutMilliseconds)) != nil else { return }
        let credentials = unixPath != nil ? client.peerCredentials : nil
        let peer = Peer(uid: credentials?.uid, gid: credentials?.gid)
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while request.count < maxRequestBytes && !complete(request) && ContinuousClock.now < deadline {
            let wanted = min(buffer.count, maxRequestBytes - request.count)
            let received = buffer.withUnsafeMutableBytes { bytes in
                try? client.receive(into: UnsafeMutableRawBufferPointer(rebasing: bytes[..<wanted]))
            }
            guard let count = received ?? nil, count > 0 else { break }
            request += buffer[0..<count]
        }
        guard complete(request) || request.count >= maxRequestBytes else { return }
        _ = client.sendAll(handler(request, peer))
    }
}
