/// An IPv4 or IPv6 address as two 64-bit words in network order.
///
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so one representation serves both families and an IPv4
/// key hashes the same on every node. Parsing and printing are pure Swift: this module makes no C calls.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The first 64 bits of the IPv6 form, most significant byte first.
    public var high: UInt64
    /// The last 64 bits of the IPv6 form; for IPv4 this is `0x0000_FFFF_AABB_CCDD`.
    public var low: UInt64

    static let v4MappedPrefix: UInt64 = 0x0000_FFFF_0000_0000

    /// Creates an address from its two 64-bit halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Creates an IPv4 address from its 32-bit value in host order (`198.18.0.1` is `0xC612_0001`).
    public init(ipv4 value: UInt32) {
        self.init(high: 0, low: Self.v4MappedPrefix | UInt64(value))
    }

    /// Creates an address from 4 (IPv4) or 16 (IPv6) bytes in network order; `nil` for any other length.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        switch bytes.count {
        case 4:
            self.init(ipv4: bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            var words: (UInt64, UInt64) = (0, 0)
            for (index, byte) in bytes.enumerated() {
                if index < 8 { words.0 = words.0 << 8 | UInt64(byte) } else { words.1 = words.1 << 8 | UInt64(byte) }
            }
            self.init(high: words.0, low: words.1)
        default:
            return nil
        }
    }

    /// Whether this is an IPv4 address (stored IPv4-mapped).
    public var isIPv4: Bool { high == 0 && low & 0xFFFF_FFFF_0000_0000 == Self.v4MappedPrefix }

    /// The IPv4 value in host order, or `nil` for an IPv6 address.
    public var ipv4Value: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: low) : nil }

    /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        if let v4 = ipv4Value { return (0..<4).map { UInt8(truncatingIfNeeded: v4 >> (24 - 8 * $0)) } }
        return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    /// The address with every bit after the first `bits` of its own family cleared (`/24` of an IPv4 address keeps
    /// three bytes).
    public func masked(toPrefixLength bits: Int) -> IPAddress {
        let total = isIPv4 ? 32 : 128
        let keep = max(0, min(bits, total)) + (128 - total)
        let highMask: UInt64 = keep >= 64 ? .max : (keep == 0 ? 0 : ~(UInt64.max >> keep))
        let lowMask: UInt64 = keep <= 64 ? 0 : (keep >= 128 ? .max : ~(UInt64.max >> (keep - 64)))
        return IPAddress(high: high & highMask, low: low & lowMask)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// Dotted quad for IPv4; RFC 5952 text (lower case, longest zero run compressed) for IPv6.
    public var description: String {
        if let v4 = ipv4Value {
            return (0..<4).map { String((v4 >> (24 - 8 * $0)) & 0xFF) }.joined(separator: ".")
        }
        let groups = (0..<8).map { index -> UInt16 in
            let word = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * (index % 4)))
        }
        var bestStart = -1
        var bestLength = 1  // RFC 5952: a single zero group is not compressed
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > bestLength { (bestStart, bestLength) = (index, end - index) }
            index = end
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestStart >= 0 else { return hex.joined(separator: ":") }
        let head = hex[..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }
}
