import Foundation
import Glibc
import Testing

@testable import Testbed
@testable import lbnode

/// systemd's side of `Type=notify`: a datagram socket of our own in `NOTIFY_SOCKET`, as the service manager makes one.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init() throws {
        path = NSTemporaryDirectory() + "vipfarm-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0 else { throw FarmError("cannot bind a notify socket at \(path)") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The messages that arrive within `seconds`.
    func messages(for seconds: Double) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { messages.append(String(decoding: buffer[0..<count], as: UTF8.self)) }
        }
        return messages
    }
}

struct ServiceNotifierTests {
    @Test func itSpeaksOnlyToAServiceManagerAndFeedsOnlyItsOwnWatchdog() {
        #expect(ServiceNotifier(environment: [:]) == nil)
        #expect(ServiceNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
        let notifier = ServiceNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000"])
        #expect(notifier?.watchdogMilliseconds == 1500)
        let another = ServiceNotifier(
            environment: ["NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"])
        #expect(another != nil && another?.watchdogMilliseconds == nil)
    }

    /// `lbnode run` under a service manager: READY=1 once it serves, WATCHDOG=1 from its heartbeat loop at half the
    /// watchdog time, STOPPING=1 when it is told to stop.
    @Test(privileged) func aRunningNodeSaysReadyFeedsTheWatchdogAndSaysStopping() throws {
        let notify = try NotifySocket()
        var options = VirtualFarm.Options(testbed: .init(servers: 2, clients: 1))
        options.heartbeatIntervalMilliseconds = 20
        options.deadAfter = 5
        options.environment = [1: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"]]
        let farm = try VirtualFarm(options)
        defer { farm.stop() }
        let first = notify.messages(for: 2)
        #expect(first.first?.hasPrefix("READY=1\nSTATUS=node 1 of farm vfarm") == true, "\(first)")
        // One every 100 ms: about 20 in two seconds, however busy the machine.
        #expect(first.filter { $0 == "WATCHDOG=1" }.count >= 8, "\(first)")
        farm.signal(1, SIGTERM)
        #expect(notify.messages(for: 1).contains("STOPPING=1"))
    }
}
