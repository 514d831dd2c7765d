extension IPAddress {
    /// Parses dotted-quad IPv4 (`198.18.0.1`) or IPv6 text (`2001:db8::1`, `::ffff:198.18.0.1`); `nil` for anything
    /// else, including zone suffixes (`%eth0`), prefixes (`/24`) and surrounding spaces.
    public init?(_ text: String) {
        if let v4 = Self.parseIPv4(Substring(text)) {
            self.init(ipv4: v4)
        } else if let v6 = Self.parseIPv6(Substring(text)) {
            self = v6
        } else {
            return nil
        }
    }

    /// Four decimal octets, no leading zeros (they mean octal to some parsers, so they are refused here).
    static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part.count == 1 || part.first != "0", let octet = UInt32(part), octet <= 255
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseIPv6(_ text: Substring) -> IPAddress? {
        guard text.count >= 2, text.allSatisfy({ $0.isASCII }) else { return nil }
        let halves = splitAtDoubleColon(text)
        guard let halves else { return nil }
        guard let head = parseGroups(halves.head, allowTrailingIPv4: halves.tail == nil) else { return nil }
        var groups = head
        if let tailText = halves.tail {
            guard let tail = parseGroups(tailText, allowTrailingIPv4: true), head.count + tail.count <= 7 else {
                return nil
            }
            groups += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard groups.count == 8 else { return nil }
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return IPAddress(high: high, low: low)
    }

    /// Splits at the one `::` the text may hold; `nil` when it holds more than one.
    private static func splitAtDoubleColon(_ text: Substring) -> (head: Substring, tail: Substring?)? {
        let chars = Array(text.utf8)
        var found: Int?
        let colon = UInt8(ascii: ":")
        for index in 0..<(chars.count - 1) where chars[index] == colon && chars[index + 1] == colon {
            if let first = found {
                if index != first + 1 { return nil }  // a second "::" (":::" is caught by the group parser)
            } else {
                found = index
            }
        }
        guard let split = found else { return (text, nil) }
        let utf8 = text.utf8
        let headEnd = utf8.index(utf8.startIndex, offsetBy: split)
        let tailStart = utf8.index(headEnd, offsetBy: 2)
        return (text[..<headEnd], text[tailStart...])
    }

    /// Colon-separated hex groups; an embedded IPv4 address may end the list (it counts as two groups).
    private static func parseGroups(_ text: Substring, allowTrailingIPv4: Bool) -> [UInt16]? {
        if text.isEmpty { return [] }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var groups: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1, allowTrailingIPv4, part.contains(".") {
                guard let v4 = parseIPv4(part) else { return nil }
                groups += [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
            } else {
                guard (1...4).contains(part.count), part.allSatisfy({ $0.isHexDigit }),
                    let group = UInt16(part, radix: 16)
                else { return nil }
                groups.append(group)
            }
        }
        return groups.count <= 8 ? groups : nil
    }
}
