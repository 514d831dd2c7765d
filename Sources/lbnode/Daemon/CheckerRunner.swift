import Foundation
import Glibc
import RouteSetup
import Synchronization

/// Runs the configured checkers on a thread of its own; the node is healthy while every one of them passes. Results
/// go through `HealthHysteresis`, so one lost probe does not flap the farm. A checker's health is unknown, which
/// counts as failing, until it has passed `rises` times: a node joins only once its application answers. (The link
/// of the farm interface is watched by the data-path monitor, at every heartbeat interval.)
final class CheckerRunner: @unchecked Sendable {
    private let checkers: [FarmConfig.Checker]
    private let vip: IPPrefix
    private let log: @Sendable (String) -> Void
    private let states: Mutex<[HealthHysteresis]>
    private let stopped = Mutex(false)
    private var thread: Thread?

    /// - Parameter previous: the runner of the configuration being reloaded: checkers that did not change keep
    ///   their health (a reload must not take a healthy node out, nor let a failing one in).
    init(config: FarmConfig, previous: CheckerRunner? = nil, log: @escaping @Sendable (String) -> Void) {
        checkers = config.checkers
        vip = config.farm.vip
        self.log = log
        let kept = previous.map { old in
            Dictionary(zip(old.checkers, old.states.withLock { $0 }), uniquingKeysWith: { first, _ in first })
        } ?? [:]
        states = Mutex(
            config.checkers.map { checker in
                kept[checker] ?? HealthHysteresis(fails: checker.fails, rises: checker.rises, healthy: false)
            })
    }

    /// Whether every checker passes.
    var healthy: Bool { states.withLock { $0.allSatisfy(\.healthy) } }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "vipfarm-checkers"
        self.thread = thread
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
    }

    private func run() {
        var due = Array(repeating: ContinuousClock.now, count: checkers.count)
        while !stopped.withLock({ $0 }) {
            for (index, checker) in checkers.enumerated() where ContinuousClock.now >= due[index] {
                due[index] = ContinuousClock.now + .milliseconds(checker.intervalMilliseconds)
                let success = probe(checker)
                if let changed = states.withLock({ $0[index].record(success: success) }) {
                    log("checker \(index) (\(describe(checker))) is \(changed ? "passing" : "failing")")
                }
            }
            usleep(10_000)
        }
    }

    private func describe(_ checker: FarmConfig.Checker) -> String {
        switch checker.kind {
        case .tcp(let port): "tcp \(vip.address):\(port)"
        case .command(let command): "command \(command)"
        }
    }

    private func probe(_ checker: FarmConfig.Checker) -> Bool {
        let timeout = max(10, checker.intervalMilliseconds / 2)
        switch checker.kind {
        case .tcp(let port): return Self.connects(to: vip, port: port, timeoutMilliseconds: Int32(timeout))
        case .command(let command): return Self.succeeds(command, timeoutMilliseconds: timeout)
        }
    }

    /// A TCP connect to the local application on the VIP, within the timeout.
    static func connects(to address: IPPrefix, port: UInt16, timeoutMilliseconds: Int32) -> Bool {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var storage = sockaddr_storage()
        let length: socklen_t
        if address.isIPv4 {
            length = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    pointer.pointee.sin_family = sa_family_t(AF_INET)
                    pointer.pointee.sin_port = port.bigEndian
                    withUnsafeMutableBytes(of: &pointer.pointee.sin_addr) { $0.copyBytes(from: address.bytes) }
                    return socklen_t(MemoryLayout<sockaddr_in>.size)
                }
            }
        } else {
            length = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    pointer.pointee.sin6_family = sa_family_t(AF_INET6)
                    pointer.pointee.sin6_port = port.bigEndian
                    withUnsafeMutableBytes(of: &pointer.pointee.sin6_addr) { $0.copyBytes(from: address.bytes) }
                    return socklen_t(MemoryLayout<sockaddr_in6>.size)
                }
            }
        }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        if result == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return false }
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0
    }

    /// `/bin/sh -c command` exits 0 within the timeout (its whole process group is killed otherwise, pipelines and
    /// grandchildren included). Spawned and reaped here with `posix_spawn` and `waitpid`, not Foundation's `Process`,
    /// whose wait on Linux outlasted a killed child by seconds; SIGTERM, SIGINT and SIGPIPE are reset to their
    /// defaults in the child (the daemon ignores them, and a child would inherit that). A failed `waitpid` is a
    /// failure, never a pass.
    static func succeeds(_ command: String, timeoutMilliseconds: Int) -> Bool {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)  // a group of its own, killed as one
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let words: [String] = ["/bin/sh", "-c", command]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for argument in arguments { free(argument) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/sh", &actions, &attributes, arguments, environ) == 0 else { return false }
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            guard reaped == 0, ContinuousClock.now < deadline else {
                kill(-pid, SIGKILL)
                waitpid(pid, &status, 0)
                return false
            }
            usleep(2_000)
        }
        kill(-pid, SIGKILL)  // what the command left running in its group
        // Exited normally (low 7 bits 0) with status 0.
        return status & 0x7F == 0 && (status >> 8) & 0xFF == 0
    }
}
