/// An Ethernet (MAC) address.
public struct HardwareAddress: Hashable, Sendable, TextCodable {
    /// The six bytes, in transmission order.
    public let bytes: [UInt8]

    /// - Returns: `nil` unless there are exactly six bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// Parses `02:00:5e:00:01:0a` (colons or dashes, either case).
    public init?(_ text: String) {
        let parts = text.split(omittingEmptySubsequences: false) { $0 == ":" || $0 == "-" }
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, part.allSatisfy(\.isHexDigit), let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    /// Whether the group bit is set (multicast or broadcast), which no interface may use as its own address.
    public var isMulticast: Bool { bytes[0] & 1 != 0 }
    /// Whether the locally administered bit is set, as on every vipfarm virtual MAC.
    public var isLocallyAdministered: Bool { bytes[0] & 2 != 0 }

    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
