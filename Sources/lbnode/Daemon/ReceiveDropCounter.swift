import Glibc
import RouteSetup

/// How many received frames this host has dropped: the farm interface's own drops (its ring or queue full) and the
/// kernel's per-CPU backlog drops (`/proc/net/softnet_stat`). A flood that fills either drops heartbeats with it, so
/// a growing count makes silent peers' deadlines longer (`LossTolerance`). Read at most once per interval.
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

    /// The count, if an interval has passed since the last reading; nil otherwise.
    mutating func read(now: Int) -> UInt64? {
        guard now - readAt >= intervalMilliseconds else { return nil }
        readAt = now
        let link = (try? netlink?.link(named: interface))??.receiveDrops ?? 0
        return link &+ Self.backlogDrops()
    }

    /// The second column of `/proc/net/softnet_stat` (hexadecimal, a line per CPU): frames dropped because the
    /// CPU's backlog was full. The kernel keeps one count per CPU for the whole host, whatever the namespace.
    static func backlogDrops() -> UInt64 {
        let descriptor = open("/proc/net/softnet_stat", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return 0 }
        return backlogDrops(in: buffer[0..<count])
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
