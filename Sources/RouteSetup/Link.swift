import CNetlink
import Glibc

/// What the kernel says about a network interface.
public struct Link: Equatable, Sendable {
    public let name: String
    public let index: Int32
    /// `IFF_*` flags.
    public let flags: UInt32
    public let mac: HardwareAddress?
    public let mtu: UInt32
    /// The index of the bridge (or bond) it is a port of; 0 when none.
    public let masterIndex: Int32
    /// The link kind ("tun", "veth", "bridge", ...), or `nil` for a physical NIC.
    public let kind: String?
    /// Received frames the interface dropped: no room in its ring or queue (`rx_dropped`, `rx_missed_errors`,
    /// `rx_fifo_errors`, `rx_over_errors`).
    public let receiveDrops: UInt64

    // The UAPI values of `linux/if.h` (Glibc and the kernel header import them as different types).
    static let upFlag: UInt32 = 0x1
    static let runningFlag: UInt32 = 0x40
    static let noARPFlag: UInt32 = 0x80

    /// Administratively up (`IFF_UP`).
    public var isUp: Bool { flags & Self.upFlag != 0 }
    /// Carrier present and operational (`IFF_RUNNING`).
    public var isRunning: Bool { flags & Self.runningFlag != 0 }
    /// The kernel will not answer ARP on it (`IFF_NOARP`).
    public var isNoARP: Bool { flags & Self.noARPFlag != 0 }

    /// Reads a libnl `rtnl_link` (borrowed).
    init(_ link: OpaquePointer) {
        name = String(cString: rtnl_link_get_name(link))
        index = rtnl_link_get_ifindex(link)
        flags = rtnl_link_get_flags(link)
        mac = NetlinkAddress.bytes(of: rtnl_link_get_addr(link)).flatMap(HardwareAddress.init(bytes:))
        mtu = rtnl_link_get_mtu(link)
        masterIndex = rtnl_link_get_master(link)
        kind = rtnl_link_get_type(link).map { String(cString: $0) }
        receiveDrops = [RTNL_LINK_RX_DROPPED, RTNL_LINK_RX_MISSED_ERR, RTNL_LINK_RX_FIFO_ERR, RTNL_LINK_RX_OVER_ERR]
            .reduce(0) { $0 &+ rtnl_link_get_stat(link, $1) }
    }
}

/// The change `NetlinkSocket.changeLink` makes; `nil` fields stay as they are.
public struct LinkChange: Sendable {
    public var up: Bool?
    public var noARP: Bool?
    public var mac: HardwareAddress?
    public var mtu: UInt32?
    public var masterIndex: Int32?

    public init(
        up: Bool? = nil, noARP: Bool? = nil, mac: HardwareAddress? = nil, mtu: UInt32? = nil,
        masterIndex: Int32? = nil
    ) {
        self.up = up
        self.noARP = noARP
        self.mac = mac
        self.mtu = mtu
        self.masterIndex = masterIndex
    }
}
