/// An IP protocol number (the IPv4 protocol or IPv6 next-header field).
public struct IPProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let icmp = IPProtocol(rawValue: 1)
    public static let tcp = IPProtocol(rawValue: 6)
    public static let udp = IPProtocol(rawValue: 17)
    public static let icmpv6 = IPProtocol(rawValue: 58)

    public var description: String {
        switch self {
        case .icmp: "icmp"
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmpv6: "icmpv6"
        default: "proto-\(rawValue)"
        }
    }
}

/// What identifies a client flow to the farm: the client's address and port, the protocol, and the server port.
///
/// The server address is always the VIP, so it is not part of the key. For protocols without ports (ICMP) and for IP
/// fragments the ports are 0.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var client: IPAddress
    public var clientPort: UInt16
    public var serverPort: UInt16
    public var proto: IPProtocol

    public init(client: IPAddress, clientPort: UInt16, serverPort: UInt16, proto: IPProtocol) {
        self.client = client
        self.clientPort = clientPort
        self.serverPort = serverPort
        self.proto = proto
    }

    /// Ports and protocol packed in one word: `clientPort << 32 | serverPort << 16 | protocol`.
    @inlinable
    public var portsWord: UInt64 {
        UInt64(clientPort) << 32 | UInt64(serverPort) << 16 | UInt64(proto.rawValue)
    }

    public var description: String {
        let address = client.isIPv4 ? "\(client)" : "[\(client)]"
        return "\(proto) \(address):\(clientPort) -> :\(serverPort)"
    }
}
