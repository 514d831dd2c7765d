import Foundation
import Glibc

/// systemd's service protocol (sd_notify(3)) without libsystemd: datagrams to the socket in `$NOTIFY_SOCKET`. The
/// node says `READY=1` once its engine runs and its heartbeat loop starts, `WATCHDOG=1` from that loop at half of
/// `WatchdogSec` (so a loop that hangs gets the node restarted), and `STOPPING=1` when it leaves. Sends never block:
/// a service manager that lags must not hold up the heartbeats.
final class ServiceNotifier {
    private let fd: Int32
    private var address = sockaddr_un()
    private let addressLength: socklen_t
    /// How often the loop says it lives (ms); nil: no watchdog asked for.
    let watchdogMilliseconds: Int?
    private var lastWatchdog: Int?

    /// Nil when no service manager listens (`NOTIFY_SOCKET` unset: not under systemd, or `Type=simple`), or the
    /// address is not one (a path, or `@` and an abstract name).
    init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        var bytes = Array(path.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // an abstract socket's name starts with a NUL byte
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        // The watchdog is this process's only if WATCHDOG_PID (when given) names it.
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let microseconds = environment["WATCHDOG_USEC"].flatMap(Int.init), microseconds > 0 {
            watchdogMilliseconds = max(1, microseconds / 2000)
        } else {
            watchdogMilliseconds = nil
        }
    }

    deinit {
        close(fd)
    }

    /// Sends `state` (`KEY=value` lines). The corresponding C function is `sendto`.
    func send(_ state: String) {
        let bytes = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), $0, addressLength)
            }
        }
    }

    /// Says `WATCHDOG=1` if half the watchdog time passed since the last time (`now` in ms).
    func feedWatchdog(now: Int) {
        guard let interval = watchdogMilliseconds, lastWatchdog.map({ now - $0 >= interval }) ?? true else { return }
        lastWatchdog = now
        send("WATCHDOG=1")
    }
}
