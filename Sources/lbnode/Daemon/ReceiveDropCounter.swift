import Glibc
import RouteSetup

/// Counts of received frames this host dropped, each only growing (until its interface or program is re-created).
struct ReceiveDrops: Equatable {
    /// The farm interface's own drops: no room in its ring or queue.
    var interface: UInt64 = 0
    /// The kernel's per-CPU backlog drops (`/proc/net/softnet_stat`), for the whole host.
    var backlog: UInt64 = 0
    /// Pings to the VIP beyond the kernel's budget (the prefilter's `echo_rate_limited`).
    var pings: UInt64 = 0
    /// Datagrams the heartbeat socket dropped: its kernel filter's, or no room in its buffer.
    var heartbeatSocket: UInt64 = 0

    var total: UInt64 { interface &+ backlog &+ pings &+ heartbeatSocket }

    /// The counts that grew since `earlier`, named as the log says them.
    func grown(since earlier: ReceiveDrops) -> [String] {
        [
            (interface, earlier.interface, "the interface's"), (backlog, earlier.backlog, "the kernel's backlog"),
            (pings, earlier.pings, "pings beyond the budget"),
            (heartbeatSocket, earlier.heartbeatSocket, "the heartbeat socket's"),
        ].filter { $0.0 > $0.1 }.map { "\($0.2) +\($0.0 - $0.1)" }
    }
}

/// Reads the farm interface's drops and the kernel's backlog drops, at most once per interval. A flood that fills
/// either drops heartbeats with it, so growing counts make silent peers' deadlines longer (`LossTolerance`).
struct ReceiveDropCounter {
    let interface: String
    let intervalMilliseconds: Int
    private let netlink: NetlinkSocket?
    private var readAt = Int.min / 2

    init(interface: String, intervalMilliseconds: Int) {
        self.interface = interface
        self.intervalMilliseconds = intervalMilliseconds
        netlink = try? NetlinkSocket()
    }

    /// The interface's and the backlog's counts, if an interval has passed since the last reading; nil otherwise.
    mutating func read(now: Int) -> ReceiveDrops? {
        guard now - readAt >= intervalMilliseconds else { return nil }
        readAt = now
        let link = (try? netlink?.link(named: interface))??.receiveDrops ?? 0
        return ReceiveDrops(interface: link, backlog: Self.backlogDrops())
    }

    /// The second column of `/proc/net/softnet_stat` (hexadecimal, a line per CPU): frames dropped because the
    /// CPU's backlog was full. The kernel keeps one count per CPU for the whole host, whatever the namespace.
    static func backlogDrops() -> UInt64 { SoftnetFile.shared?.read().map(backlogDrops(in:)) ?? 0 }

    /// `/proc/net/softnet_stat`, opened once and read again from its start at each look (the kernel formats it anew
    /// at offset 0): an open and a close at every heartbeat interval cost the loop more than the read.
    final class SoftnetFile: Sendable {
        private let descriptor: Int32

        static let shared = SoftnetFile()

        private init?() {
            descriptor = open("/proc/net/softnet_stat", O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
        }

        deinit { close(descriptor) }

        /// The file's text now (nil if it cannot be read).
        func read() -> ArraySlice<UInt8>? {
            var buffer = [UInt8](repeating: 0, count: 16_384)
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
            return count > 0 ? buffer[0..<count] : nil
        }
    }

    static func backlogDrops(in text: ArraySlice<UInt8>) -> UInt64 {
        text.split(separator: UInt8(ascii: "\n")).reduce(0) { total, line in
            let columns = line.split(separator: UInt8(ascii: " "))
            guard columns.count > 1, let dropped = UInt64(String(decoding: columns[1], as: UTF8.self), radix: 16)
            else { return total }
            return total &+ dropped
        }
    }
}
