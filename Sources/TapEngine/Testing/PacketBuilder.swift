import Hashing

/// Builds Ethernet frames: the engine's own ARP replies and announcements, the benchmark's generated traffic, and
/// the golden frames of the tests. IPv4 header checksums are computed; UDP checksums are 0 (allowed over IPv4);
/// TCP checksums are left 0, so built TCP frames are for the parser and decision tests, not for a real stack.
public enum PacketBuilder {
    /// The Ethernet header, with an optional 802.1Q tag.
    public static func ethernet(destination: UInt64, source: UInt64, etherType: UInt16, vlan: UInt16? = nil) -> [UInt8]
    {
        var bytes = macBytes(destination) + macBytes(source)
        if let vlan { bytes += be16(0x8100) + be16(vlan & 0x0FFF) }
        return bytes + be16(etherType)
    }

    /// An ARP packet (request: operation 1, reply: 2) in an Ethernet frame.
    public static func arp(
        operation: UInt16, ethernetSource: UInt64, ethernetDestination: UInt64, senderMAC: UInt64,
        senderIP: UInt32, targetMAC: UInt64, targetIP: UInt32
    ) -> [UInt8] {
        ethernet(destination: ethernetDestination, source: ethernetSource, etherType: 0x0806)
            + be16(1) + be16(0x0800) + [6, 4] + be16(operation)
            + macBytes(senderMAC) + be32(senderIP) + macBytes(targetMAC) + be32(targetIP)
    }

    /// A UDP datagram over IPv4 or IPv6 (the family of `source`).
    public static func udp(
        destinationMAC: UInt64, sourceMAC: UInt64, source: IPAddress, destination: IPAddress,
        sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8], vlan: UInt16? = nil, ttl: UInt8 = 64
    ) -> [UInt8] {
        let segment = be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + be16(0) + payload
        return ip(
            destinationMAC: destinationMAC, sourceMAC: sourceMAC, source: source, destination: destination,
            protocol: 17, payload: segment, vlan: vlan, ttl: ttl)
    }

    /// A TCP segment (20-byte header, no options) over IPv4 or IPv6.
    public static func tcp(
        destinationMAC: UInt64, sourceMAC: UInt64, source: IPAddress, destination: IPAddress,
        sourcePort: UInt16, destinationPort: UInt16, flags: UInt8, sequence: UInt32 = 1, payload: [UInt8] = []
    ) -> [UInt8] {
        let header =
            be16(sourcePort) + be16(destinationPort) + be32(sequence) + be32(0) + [0x50, flags]
            + be16(65535) + be16(0) + be16(0)
        return ip(
            destinationMAC: destinationMAC, sourceMAC: sourceMAC, source: source, destination: destination,
            protocol: 6, payload: header + payload)
    }

    /// An IPv4 (with `fragment` = flags and offset, and optional options) or IPv6 packet carrying `payload`.
    public static func ip(
        destinationMAC: UInt64, sourceMAC: UInt64, source: IPAddress, destination: IPAddress, protocol number: UInt8,
        payload: [UInt8], fragment: UInt16 = 0, options: [UInt8] = [], vlan: UInt16? = nil, ttl: UInt8 = 64,
        identification: UInt16 = 0x1234
    ) -> [UInt8] {
        if let from = source.ipv4Value, let to = destination.ipv4Value {
            precondition(options.count % 4 == 0, "IPv4 options come in 4-byte words")
            var header =
                [0x45 + UInt8(options.count / 4), 0] + be16(UInt16(20 + options.count + payload.count))
                + be16(identification) + be16(fragment) + [ttl, number] + be16(0) + be32(from) + be32(to) + options
            let checksum = internetChecksum(header)
            header[10] = UInt8(checksum >> 8)
            header[11] = UInt8(checksum & 0xFF)
            return ethernet(destination: destinationMAC, source: sourceMAC, etherType: 0x0800, vlan: vlan) + header
                + payload
        }
        let header = [0x60, 0, 0, 0] + be16(UInt16(payload.count)) + [number, ttl] + source.bytes + destination.bytes
        return ethernet(destination: destinationMAC, source: sourceMAC, etherType: 0x86DD, vlan: vlan) + header
            + payload
    }

    /// The one's-complement sum of 16-bit words (RFC 1071).
    public static func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    public static func macBytes(_ mac: UInt64) -> [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: mac >> (40 - 8 * $0)) }
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func be32(_ value: UInt32) -> [UInt8] { be16(UInt16(value >> 16)) + be16(UInt16(value & 0xFFFF)) }
}
