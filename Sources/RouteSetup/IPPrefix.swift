import Glibc

/// An IPv4 or IPv6 address with a prefix length, as the kernel stores interface addresses and routes.
public struct IPPrefix: Hashable, Sendable, TextCodable {
    /// `AF_INET` or `AF_INET6`.
    public let family: Int32
    /// 4 or 16 bytes in network order.
    public let bytes: [UInt8]
    /// 0...32 or 0...128.
    public let prefixLength: Int

    /// Parses `198.18.0.100`, `198.18.0.0/15`, `2001:db8::1` or `2001:db8::/64`; a bare address is a host prefix
    /// (/32 or /128). `nil` for anything else. The corresponding C function is `inet_pton`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let address = String(parts[0])
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, address, &buffer) == 1 {
            family = AF_INET
            bytes = Array(buffer[0..<4])
        } else if inet_pton(AF_INET6, address, &buffer) == 1 {
            family = AF_INET6
            bytes = buffer
        } else {
            return nil
        }
        let maximum = bytes.count * 8
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isNumber), let length = Int(parts[1]), length <= maximum
            else { return nil }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
    }

    /// An address from its bytes (4 or 16) and prefix length.
    public init?(bytes: [UInt8], prefixLength: Int) {
        guard bytes.count == 4 || bytes.count == 16, (0...(bytes.count * 8)).contains(prefixLength) else { return nil }
        self.family = bytes.count == 4 ? AF_INET : AF_INET6
        self.bytes = bytes
        self.prefixLength = prefixLength
    }

    public var isIPv4: Bool { family == AF_INET }

    /// The same address as a host prefix (/32 or /128).
    public var host: IPPrefix { IPPrefix(bytes: bytes, prefixLength: bytes.count * 8)! }

    /// The address alone, without the prefix length. The corresponding C function is `inet_ntop`.
    public var address: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(family, bytes, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `address/prefixLength`.
    /// Whether `other`'s address lies within this prefix (both of one family).
    public func contains(_ other: IPPrefix) -> Bool {
        guard other.family == family else { return false }
        var bits = prefixLength
        for index in bytes.indices where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if bytes[index] & mask != other.bytes[index] & mask { return false }
            bits -= 8
        }
        return true
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
