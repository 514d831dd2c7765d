import CKernel
import Foundation
import Glibc

/// A named network namespace, kept the way `ip netns` keeps them (a bind mount under `/run/netns`), so that
/// `ip netns list` and `ip netns exec` see it too.
public struct NetworkNamespace: Hashable, Sendable {
    /// Where named namespaces live.
    public static let directory = "/run/netns"

    public let name: String
    public var path: String { "\(Self.directory)/\(name)" }

    /// An existing namespace by name (not checked; `exists` tells).
    public init(named name: String) {
        self.name = name
    }

    public var exists: Bool { access(path, F_OK) == 0 }

    /// The names of every named namespace.
    public static func all() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    /// Creates the namespace `name`, with its loopback up.
    ///
    /// - Throws: `NetlinkError` when it exists or the caller lacks CAP_SYS_ADMIN. The corresponding C calls are
    ///   `unshare(CLONE_NEWNET)` on a thread of its own and a bind `mount` of that thread's namespace.
    @discardableResult
    public static func create(named name: String) throws(NetlinkError) -> NetworkNamespace {
        let namespace = NetworkNamespace(named: name)
        let operation = "create network namespace \(name)"
        guard !name.isEmpty, !name.contains("/") else { throw NetlinkError(operation: operation, errno: EINVAL) }
        try makeDirectoryShared(operation: operation)
        let fd = open(namespace.path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard fd >= 0 else { throw NetlinkError(operation: operation, errno: errno) }
        close(fd)
        let bound: Result<Void, NetlinkError> = onOwnThread {
            guard vipfarm_unshare_network() == 0 else {
                return .failure(NetlinkError(operation: operation, errno: errno))
            }
            guard mount("/proc/thread-self/ns/net", namespace.path, "none", UInt(MS_BIND), nil) == 0 else {
                return .failure(NetlinkError(operation: operation, errno: errno))
            }
            return .success(())
        }
        do {
            try bound.get()
            try namespace.run { () throws(NetlinkError) in
                try NetlinkSocket().changeLink(named: "lo", LinkChange(up: true))
            }
        } catch {
            try? namespace.delete()
            throw error
        }
        return namespace
    }

    /// Deletes the namespace; its interfaces go with it (a veth takes its peer in the other namespace along). The
    /// corresponding C calls are `umount2(MNT_DETACH)` and `unlink`.
    public func delete() throws(NetlinkError) {
        _ = umount2(path, Int32(MNT_DETACH))
        guard unlink(path) == 0 else { throw NetlinkError(operation: "delete network namespace \(name)", errno: errno) }
    }

    /// Runs `body` on a thread of its own that has entered this namespace (`setns`), and returns its result. Sockets
    /// and `/proc/sys/net` files opened in `body` belong to the namespace.
    public func run<T>(_ body: () throws(NetlinkError) -> T) throws(NetlinkError) -> T {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError(operation: "open network namespace \(name)", errno: errno) }
        defer { close(fd) }
        let outcome: Result<T, NetlinkError> = Self.onOwnThread {
            guard vipfarm_enter_network(fd) == 0 else {
                return .failure(NetlinkError(operation: "enter network namespace \(name)", errno: errno))
            }
            return Result { () throws(NetlinkError) in try body() }
        }
        return try outcome.get()
    }

    /// Lends a descriptor of the namespace (for moving an interface into it); valid only inside `body`.
    public func withDescriptor<T>(_ body: (Int32) throws(NetlinkError) -> T) throws(NetlinkError) -> T {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError(operation: "open network namespace \(name)", errno: errno) }
        defer { close(fd) }
        return try body(fd)
    }

    /// `/run/netns` must exist and be a shared mount point, so that namespace mounts made under it propagate (what
    /// `ip netns add` does).
    private static func makeDirectoryShared(operation: String) throws(NetlinkError) {
        if mkdir("/run", 0o755) != 0 && errno != EEXIST { throw NetlinkError(operation: operation, errno: errno) }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw NetlinkError(operation: operation, errno: errno) }
        if mount("", directory, "none", UInt(MS_SHARED | MS_REC), nil) == 0 { return }
        guard errno == EINVAL, mount(directory, directory, "none", UInt(MS_BIND | MS_REC), nil) == 0,
            mount("", directory, "none", UInt(MS_SHARED | MS_REC), nil) == 0
        else { throw NetlinkError(operation: operation, errno: errno) }
    }

    /// Runs `body` on a new thread and waits for it: namespace changes then stay on that thread.
    private static func onOwnThread<T>(_ body: () -> T) -> T {
        withoutActuallyEscaping(body) { escapable in
            let box = ThreadBox(escapable)
            let thread = Thread { box.run() }
            thread.stackSize = 1 << 20
            thread.start()
            box.done.wait()
            return box.result!
        }
    }
}

/// Carries a closure and its result across the thread that `onOwnThread` starts; the caller waits on `done`, so the
/// two threads never touch it at once.
private final class ThreadBox<T>: @unchecked Sendable {
    /// Dropped as soon as it has run: it must not outlive `withoutActuallyEscaping`.
    var body: (() -> T)?
    var result: T?
    let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping () -> T) {
        self.body = body
    }

    func run() {
        result = body?()
        body = nil
        done.signal()
    }
}
