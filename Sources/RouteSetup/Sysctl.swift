import Glibc

/// A kernel setting under `/proc/sys`, named the `sysctl` way (`net.ipv4.conf.eth0.arp_ignore`).
///
/// Network settings belong to the network namespace of the thread that opens them, so reading one inside
/// `NetworkNamespace.run` reads that namespace's.
public struct Sysctl: Hashable, Sendable, TextCodable, Comparable {
    public let name: String

    public init(_ name: String) {
        self.name = name
    }

    /// `net.ipv4.conf.<interface>.<key>`.
    public static func ipv4(_ interface: String, _ key: String) -> Sysctl {
        Sysctl("net.ipv4.conf.\(interface).\(key)")
    }

    /// `net.ipv6.conf.<interface>.<key>`.
    public static func ipv6(_ interface: String, _ key: String) -> Sysctl {
        Sysctl("net.ipv6.conf.\(interface).\(key)")
    }

    /// The file: dots become slashes (interface names with dots, like VLANs `eth0.100`, are kept whole).
    public var path: String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 5, parts[0] == "net", parts[2] == "conf" {
            let interface = parts[3..<(parts.count - 1)].joined(separator: ".")
            return "/proc/sys/net/\(parts[1])/conf/\(interface)/\(parts.last!)"
        }
        return "/proc/sys/" + parts.joined(separator: "/")
    }

    /// The current value, trimmed. The corresponding C functions are `open` and `read`.
    public func read() throws(NetlinkError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError(operation: "read \(name)", errno: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count >= 0 else { throw NetlinkError(operation: "read \(name)", errno: errno) }
        return String(decoding: buffer[0..<count], as: UTF8.self).trimmingWhitespace
    }

    /// Sets the value. The corresponding C functions are `open` and `write`.
    public func write(_ value: String) throws(NetlinkError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError(operation: "set \(name) = \(value)", errno: errno) }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw NetlinkError(operation: "set \(name) = \(value)", errno: errno)
        }
    }

    public var description: String { name }
    public static func < (lhs: Sysctl, rhs: Sysctl) -> Bool { lhs.name < rhs.name }
}

extension String {
    var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

extension Sysctl: CodingKeyRepresentable {
    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// A sysctl keys a JSON object by its name, so saved state reads `{"net.ipv4.conf.eth0.arp_ignore": "0"}`.
    public var codingKey: CodingKey { Key(stringValue: name) }

    public init?<T: CodingKey>(codingKey: T) {
        self.init(codingKey.stringValue)
    }
}
