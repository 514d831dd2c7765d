import Glibc

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
/// either drops heartbeats with it, so growing counts make silent peers' deadlines longer (`DeadlineTolerance`).
///
/// Both come from files in `/proc`, which the kernel formats under RCU: the heartbeat loop reads them, and a netlink
/// request (`RTM_GETLINK`) waits for the host-wide RTNL lock, which anything that creates or deletes an interface on
/// the host holds for an RCU grace period. Behind it, the loop of every node on a host where one lbnode started
/// waited 12-24 ms, long enough to fence itself as stalled (`perf record -e sched:sched_switch`).
struct ReceiveDropCounter {
    let interface: String
    let intervalMilliseconds: Int
    private var readAt = Int.min / 2

    init(interface: String, intervalMilliseconds: Int) {
        self.interface = interface
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// The interface's and the backlog's counts, if an interval has passed since the last reading; nil otherwise.
    mutating func read(now: Int) -> ReceiveDrops? {
        guard now - readAt >= intervalMilliseconds else { return nil }
        readAt = now
        let link = ProcFile.devices?.read().flatMap { Self.interfaceDrops(of: interface, in: $0) } ?? 0
        return ReceiveDrops(interface: link, backlog: Self.backlogDrops())
    }

    /// The receive drops of `name` in `/proc/net/dev`: the `drop` column (the interface's drops and its missed
    /// frames) and the `fifo` column, as `ip -s link` counts them but for overruns, which the file adds to `frame`
    /// with real errors. Nil if the interface has no line.
    static func interfaceDrops(of name: String, in text: ArraySlice<UInt8>) -> UInt64? {
        let label = Array(name.utf8) + [UInt8(ascii: ":")]
        for line in text.split(separator: UInt8(ascii: "\n")) {
            let trimmed = line.drop { $0 == UInt8(ascii: " ") }
            guard trimmed.starts(with: label) else { continue }
            // The receive columns: bytes, packets, errs, drop, fifo, frame, compressed, multicast.
            let columns = trimmed.dropFirst(label.count).split(separator: UInt8(ascii: " "))
            guard columns.count > 4 else { return nil }
            let number = { (index: Int) in UInt64(String(decoding: columns[index], as: UTF8.self)) ?? 0 }
            return number(3) &+ number(4)
        }
        return nil
    }

    /// The second column of `/proc/net/softnet_stat` (hexadecimal, a line per CPU): frames dropped because the
    /// CPU's backlog was full. The kernel keeps one count per CPU for the whole host, whatever the namespace.
    static func backlogDrops() -> UInt64 { ProcFile.softnet?.read().map(backlogDrops(in:)) ?? 0 }

    /// A file in `/proc`, opened once and read again from its start at each look (the kernel formats it anew at
    /// offset 0): an open and a close at every heartbeat interval cost the loop more than the read.
    final class ProcFile: Sendable {
        private let descriptor: Int32

        static let softnet = ProcFile("/proc/net/softnet_stat")
        /// Of the network namespace lbnode runs in, as every `/proc/net` file it opens.
        static let devices = ProcFile("/proc/net/dev")

        private init?(_ path: String) {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
        }

        deinit { close(descriptor) }

        /// The file's text now, whole (nil if it cannot be read). The kernel fills a read with whole lines; one that
        /// leaves room for another line was the end of the file, so a small file costs one system call.
        func read() -> ArraySlice<UInt8>? {
            var buffer = [UInt8](repeating: 0, count: 16_384)
            var count = 0
            while true {
                if buffer.count - count < Self.longestLine { buffer += [UInt8](repeating: 0, count: buffer.count) }
                let read = buffer.withUnsafeMutableBytes {
                    pread(descriptor, $0.baseAddress! + count, $0.count - count, off_t(count))
                }
                guard read > 0 else { break }
                count += read
                if buffer.count - count >= Self.longestLine { break }
            }
            return count > 0 ? buffer[0..<count] : nil
        }

        /// Longer than any line of the files read here.
        static let longestLine = 512
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
