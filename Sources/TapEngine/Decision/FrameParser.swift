import Hashing

/// Parses Ethernet frames in place: Ethernet, 802.1Q/802.1ad tags, ARP, IPv4 (options, fragments), IPv6 (the common
/// extension headers, fragments), TCP, UDP, ICMP and ICMPv6.
///
/// Safe on any bytes: every read is bounds-checked first, and a frame that is cut short or malformed comes back as a
/// `DropReason`. No allocation, no throwing: the engine calls it for every frame.
public enum FrameParser {
    static let etherTypeIPv4: UInt16 = 0x0800
    static let etherTypeARP: UInt16 = 0x0806
    static let etherTypeIPv6: UInt16 = 0x86DD
    static let etherTypeVLAN: UInt16 = 0x8100
    static let etherTypeQinQ: UInt16 = 0x88A8
    /// Extension headers followed before giving up (real traffic has one or two).
    static let maximumExtensionHeaders = 8

    /// Parses one frame.
    ///
    /// - Parameters:
    ///   - bytes: the frame, from the destination MAC on, or its head only.
    ///   - wholeLength: with a head only, the whole frame's length: lengths are checked against it, and nothing
    ///     past the head is read (what would be there is left unparsed).
    /// - Warning: `bytes` is only read during the call; nothing in the result points into it.
    public static func parse(_ bytes: UnsafeRawBufferPointer, wholeLength: Int? = nil) -> ParseOutcome {
        var frame = Frame()
        guard bytes.count >= 14 else { return .drop(.truncatedEthernet) }
        frame.destinationMAC = mac(bytes, at: 0)
        frame.sourceMAC = mac(bytes, at: 6)
        var offset = 12
        var etherType = be16(bytes, offset)
        var tags = 0
        while etherType == etherTypeVLAN || etherType == etherTypeQinQ {
            tags += 1
            guard tags <= 2, bytes.count >= offset + 6 else { return .drop(.truncatedVLAN) }
            offset += 4
            etherType = be16(bytes, offset)
        }
        offset += 2
        frame.networkOffset = offset
        switch etherType {
        case etherTypeIPv4: return parseIPv4(bytes, offset, wholeLength ?? bytes.count, &frame)
        case etherTypeIPv6: return parseIPv6(bytes, offset, wholeLength ?? bytes.count, &frame)
        case etherTypeARP: return parseARP(bytes, offset, &frame)
        default: return .drop(.unsupportedEtherType)
        }
    }

    static func parseARP(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ frame: inout Frame)
        -> ParseOutcome
    {
        guard bytes.count >= offset + 28 else { return .drop(.truncatedARP) }
        // Ethernet (1) / IPv4 (0x0800), 6-byte MACs and 4-byte addresses: the only ARP that carries IPv4.
        guard be16(bytes, offset) == 1, be16(bytes, offset + 2) == etherTypeIPv4, bytes[offset + 4] == 6,
            bytes[offset + 5] == 4
        else { return .drop(.unsupportedARP) }
        frame.kind = be16(bytes, offset + 6) == 1 ? .arpRequest : .otherARP
        frame.key.client = IPAddress(ipv4: be32(bytes, offset + 14))
        frame.destination = IPAddress(ipv4: be32(bytes, offset + 24))
        return .frame(frame)
    }

    static func parseIPv4(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ wholeLength: Int, _ frame: inout Frame)
        -> ParseOutcome
    {
        guard bytes.count >= offset + 20 else { return .drop(.truncatedIPv4) }
        let versionAndLength = bytes[offset]
        let headerLength = Int(versionAndLength & 0x0F) * 4
        let totalLength = Int(be16(bytes, offset + 2))
        guard versionAndLength >> 4 == 4, headerLength >= 20, totalLength >= headerLength else {
            return .drop(.badIPv4Header)
        }
        // Ethernet pads short frames, so the frame may be longer than the packet, never shorter.
        guard wholeLength >= offset + totalLength else { return .drop(.truncatedIPv4) }
        let fragment = be16(bytes, offset + 6)
        frame.isFragment = fragment & 0x3FFF != 0  // MF or a nonzero offset
        frame.isLaterFragment = fragment & 0x1FFF != 0
        frame.fragmentID = UInt32(be16(bytes, offset + 4))
        frame.key.proto = IPProtocol(rawValue: bytes[offset + 9])
        frame.key.client = IPAddress(ipv4: be32(bytes, offset + 12))
        frame.destination = IPAddress(ipv4: be32(bytes, offset + 16))
        // Only the first fragment (offset 0) carries the transport header.
        guard !frame.isLaterFragment else { return .frame(frame) }
        return parseTransport(bytes, offset + headerLength, end: min(offset + totalLength, bytes.count), &frame)
    }

    static func parseIPv6(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ wholeLength: Int, _ frame: inout Frame)
        -> ParseOutcome
    {
        guard bytes.count >= offset + 40 else { return .drop(.truncatedIPv6) }
        guard bytes[offset] >> 4 == 6 else { return .drop(.badIPv6ExtensionHeader) }
        let packetEnd = offset + 40 + Int(be16(bytes, offset + 4))
        guard wholeLength >= packetEnd else { return .drop(.truncatedIPv6) }
        let end = min(packetEnd, bytes.count)
        frame.key.client = IPAddress(high: be64(bytes, offset + 8), low: be64(bytes, offset + 16))
        frame.destination = IPAddress(high: be64(bytes, offset + 24), low: be64(bytes, offset + 32))
        guard let headers = skipExtensionHeaders(bytes, next: bytes[offset + 6], at: offset + 40, end: end) else {
            return .drop(.badIPv6ExtensionHeader)
        }
        frame.isFragment = headers.isFragment
        frame.isLaterFragment = headers.isLaterFragment
        frame.fragmentID = headers.identification
        frame.key.proto = IPProtocol(rawValue: headers.next)
        // Later fragments carry no transport header.
        guard !headers.isLaterFragment else { return .frame(frame) }
        return parseTransport(bytes, headers.position, end: end, &frame)
    }

    /// Walks IPv6 extension headers from `next` at `position`: where the transport header starts and which protocol
    /// it is, and whether a fragment header came first (a later fragment has no transport header) with its
    /// identification. `nil` when the headers run past `end` or there are more than `maximumExtensionHeaders`.
    static func skipExtensionHeaders(_ bytes: UnsafeRawBufferPointer, next: UInt8, at position: Int, end: Int)
        -> (next: UInt8, position: Int, isFragment: Bool, isLaterFragment: Bool, identification: UInt32)?
    {
        var next = next
        var position = position
        var isFragment = false
        var identification: UInt32 = 0
        for _ in 0..<maximumExtensionHeaders {
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options: (length + 1) * 8 bytes
                guard end >= position + 8 else { return nil }
                next = bytes[position]
                position += (Int(bytes[position + 1]) + 1) * 8
            case 51:  // authentication header: (length + 2) * 4 bytes
                guard end >= position + 8 else { return nil }
                next = bytes[position]
                position += (Int(bytes[position + 1]) + 2) * 4
            case 44:  // fragment header, 8 bytes
                guard end >= position + 8 else { return nil }
                isFragment = true
                identification = be32(bytes, position + 4)
                let fragmentOffset = be16(bytes, position + 2) & 0xFFF8
                next = bytes[position]
                position += 8
                if fragmentOffset != 0 { return (next, position, true, true, identification) }
            default:
                guard position <= end else { return nil }
                return (next, position, isFragment, false, identification)
            }
        }
        return nil
    }

    static func parseTransport(_ bytes: UnsafeRawBufferPointer, _ offset: Int, end: Int, _ frame: inout Frame)
        -> ParseOutcome
    {
        switch frame.key.proto {
        case .tcp:
            guard end >= offset + 20 else { return .drop(.truncatedTransport) }
            guard bytes[offset + 12] >> 4 >= 5, end >= offset + Int(bytes[offset + 12] >> 4) * 4 else {
                return .drop(.badTransportHeader)
            }
            frame.key.clientPort = be16(bytes, offset)
            frame.key.serverPort = be16(bytes, offset + 2)
            frame.tcpFlags = bytes[offset + 13]
        case .udp:
            guard end >= offset + 8 else { return .drop(.truncatedTransport) }
            frame.key.clientPort = be16(bytes, offset)
            frame.key.serverPort = be16(bytes, offset + 2)
        case .icmp:
            guard end >= offset + 4 else { return .drop(.truncatedTransport) }
            switch bytes[offset] {
            case 3, 4, 11, 12: keyByQuotedIPv4(bytes, offset + 8, end: end, &frame)
            case 8: frame.isEchoRequest = true
            default: break
            }
        case .icmpv6:
            guard end >= offset + 4 else { return .drop(.truncatedTransport) }
            if (1...4).contains(bytes[offset]) {
                keyByQuotedIPv6(bytes, offset + 8, end: end, &frame)
            } else if bytes[offset] == 128 {
                frame.isEchoRequest = true
            } else if bytes[offset] == 135 {  // neighbour solicitation: 4-byte reserved, then the 16-byte target
                guard end >= offset + 24 else { return .drop(.truncatedTransport) }
                frame.kind = .neighbourSolicitation
                frame.destination = IPAddress(high: be64(bytes, offset + 8), low: be64(bytes, offset + 16))
            }
        default:
            break  // other protocols are balanced by address alone
        }
        return .frame(frame)
    }

    // MARK: - ICMP errors: keyed by the packet they quote

    /// An ICMP error quotes the header of the packet that caused it, a packet the VIP sent to a client: its
    /// destination and ports are the client side of the flow. When the quote is of such a packet, the frame takes
    /// that flow's key, so it goes where the flow goes; otherwise it stays keyed by its sender.
    static func keyByQuotedIPv4(_ bytes: UnsafeRawBufferPointer, _ offset: Int, end: Int, _ frame: inout Frame) {
        guard end >= offset + 20, bytes[offset] >> 4 == 4, bytes[offset] & 0x0F >= 5,
            IPAddress(ipv4: be32(bytes, offset + 12)) == frame.destination
        else { return }
        let laterFragment = be16(bytes, offset + 6) & 0x1FFF != 0
        keyByQuotedFlow(
            bytes, proto: bytes[offset + 9], client: IPAddress(ipv4: be32(bytes, offset + 16)),
            transport: laterFragment ? nil : offset + Int(bytes[offset] & 0x0F) * 4, end: end, &frame)
    }

    static func keyByQuotedIPv6(_ bytes: UnsafeRawBufferPointer, _ offset: Int, end: Int, _ frame: inout Frame) {
        guard end >= offset + 40, bytes[offset] >> 4 == 6,
            IPAddress(high: be64(bytes, offset + 8), low: be64(bytes, offset + 16)) == frame.destination,
            let headers = skipExtensionHeaders(bytes, next: bytes[offset + 6], at: offset + 40, end: end)
        else { return }
        keyByQuotedFlow(
            bytes, proto: headers.next, client: IPAddress(high: be64(bytes, offset + 24), low: be64(bytes, offset + 32)),
            transport: headers.isLaterFragment ? nil : headers.position, end: end, &frame)
    }

    /// The quoted packet's flow: its source port is the server port, its destination port the client's. A quote of a
    /// later fragment has no ports: it is keyed as a fragment.
    private static func keyByQuotedFlow(
        _ bytes: UnsafeRawBufferPointer, proto: UInt8, client: IPAddress, transport: Int?, end: Int,
        _ frame: inout Frame
    ) {
        frame.isICMPError = true
        frame.key.client = client
        frame.key.proto = IPProtocol(rawValue: proto)
        frame.key.clientPort = 0
        frame.key.serverPort = 0
        let hasPorts = frame.key.proto == .tcp || frame.key.proto == .udp
        if let transport, hasPorts, end >= transport + 4 {
            frame.key.serverPort = be16(bytes, transport)
            frame.key.clientPort = be16(bytes, transport + 2)
        } else {
            frame.isFragment = transport == nil
        }
    }

    // MARK: - Big-endian reads (callers check the bounds)

    @inline(__always)
    static func be16(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    @inline(__always)
    static func be32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(be16(bytes, offset)) << 16 | UInt32(be16(bytes, offset + 2))
    }

    @inline(__always)
    static func be64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(be32(bytes, offset)) << 32 | UInt64(be32(bytes, offset + 4))
    }

    @inline(__always)
    static func mac(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        UInt64(be16(bytes, offset)) << 32 | UInt64(be32(bytes, offset + 2))
    }
}
