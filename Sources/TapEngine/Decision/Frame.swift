import Hashing

/// What the parser learnt from one frame: enough to decide it, with no allocation.
///
/// MAC addresses are the 48 bits in the low bits of a `UInt64` (transmission order, first byte highest).
public struct Frame: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// An IPv4 or IPv6 packet (`key`, `destination`, `isFragment`, `tcpFlags` are set).
        case ip
        /// An ARP request; `destination` is the address asked for, `key.client` the sender's.
        case arpRequest
        /// An IPv6 neighbour solicitation; `destination` is the target address.
        case neighbourSolicitation
        /// ARP replies and other ARP operations.
        case otherARP
    }

    public var kind: Kind = .ip
    public var destinationMAC: UInt64 = 0
    public var sourceMAC: UInt64 = 0
    /// The client side of the flow; for ARP, the sender's address.
    public var key = FlowKey(client: IPAddress(high: 0, low: 0), clientPort: 0, serverPort: 0, proto: .udp)
    /// The destination IP (the VIP for client traffic), or the ARP/ND target.
    public var destination = IPAddress(high: 0, low: 0)
    /// An IP fragment (IPv4 MF or offset, or an IPv6 fragment header): its ports are not usable.
    public var isFragment = false
    /// A fragment other than the first: it has no transport header, so no ports.
    public var isLaterFragment = false
    /// A fragment's identification (IPv4: 16 bits; IPv6: 32), which its datagram's fragments share.
    public var fragmentID: UInt32 = 0
    /// An ICMP or ICMPv6 error (unreachable, fragmentation needed / packet too big, time exceeded, parameter problem)
    /// about a packet the VIP sent: `key` is the flow of the packet it quotes, so the error reaches the node that owns
    /// the connection (path MTU discovery through the farm).
    public var isICMPError = false
    /// An ICMP echo request or ICMPv6 echo request (a ping).
    public var isEchoRequest = false
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10), 0 otherwise.
    public var tcpFlags: UInt8 = 0
    /// Offset of the network header (after Ethernet and VLAN tags).
    public var networkOffset = 14

    public init() {}

    public var isTCPSyn: Bool { tcpFlags & 0x12 == 0x02 }
    public var isTCPFin: Bool { tcpFlags & 0x01 != 0 }
    public var isTCPReset: Bool { tcpFlags & 0x04 != 0 }
}

/// The MAC in a `UInt64` as text.
public func macText(_ mac: UInt64) -> String {
    (0..<6).map { index in
        let byte = UInt8(truncatingIfNeeded: mac >> (40 - 8 * index))
        return (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }.joined(separator: ":")
}

/// A MAC given as six bytes, in a `UInt64`.
public func macValue(_ bytes: [UInt8]) -> UInt64 {
    bytes.prefix(6).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
}

/// A parsed frame, or why it was dropped.
public enum ParseOutcome: Sendable, Equatable {
    case frame(Frame)
    case drop(DropReason)
}
