import Glibc
import Hashing
import Testing

@testable import TapEngine

/// The kernel's TCP connections of one local address, read through sock_diag with the kernel filtering by address;
/// on loopback.
struct TCPConnectionsTests {
    /// A listener on `address` (an IPv6 one, dual-stack, when `dualStack`), a client connected to it, and the
    /// accepted end; the listener's port.
    private static func connectedPair(
        _ address: IPAddress, dualStack: Bool = false
    ) throws -> (sockets: [Socket], port: UInt16) {
        let listener = try Socket(family: dualStack ? AF_INET6 : AF_INET, type: SOCK_STREAM)
        try listener.bind(dualStack ? IPAddress("::")! : address, port: 0)
        try listener.listen()
        var bound = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener.descriptor, $0, &length) }
        }
        let port = UInt16(bigEndian: bound.sin6_port)  // the port's offset is that of sockaddr_in's
        let client = try Socket(family: AF_INET, type: SOCK_STREAM)
        try client.bind(address, port: 0)  // else its source is lo's 127.0.0.1, whatever 127.x it connects to
        try client.connect(to: address, port: port)
        let accepted = try #require(try listener.accept())
        return ([listener, client, accepted], port)
    }

    @Test func listsTheConnectionsOfOneLocalAddressOnly() throws {
        let (first, port) = try Self.connectedPair(IPAddress("127.0.0.1")!)
        let (other, otherPort) = try Self.connectedPair(IPAddress("127.0.0.2")!)
        defer { for socket in first + other { socket.close() } }

        let listed = try TCPConnections.list(localAddress: IPAddress("127.0.0.1")!)
        // The accepted end (local port: the listener's) and the client's end (remote port: the listener's); the
        // other address's pair is not there, nor any listener.
        #expect(listed.contains { $0.serverPort == port && $0.client == IPAddress("127.0.0.1")! })
        #expect(listed.contains { $0.clientPort == port })
        #expect(!listed.contains { $0.serverPort == otherPort || $0.clientPort == otherPort })
        #expect(listed.allSatisfy { $0.client.isIPv4 })
        let others = try TCPConnections.list(localAddress: IPAddress("127.0.0.2")!)
        #expect(others.contains { $0.serverPort == otherPort })
        #expect(!others.contains { $0.serverPort == port || $0.clientPort == port })
    }

    /// An IPv4 client of a dual-stack listener: the accepted socket is IPv6, its local address IPv4-mapped.
    @Test func findsAnIPv4ConnectionOfAnIPv6Socket() throws {
        let (sockets, port) = try Self.connectedPair(IPAddress("127.0.0.3")!, dualStack: true)
        defer { for socket in sockets { socket.close() } }
        let listed = try TCPConnections.list(localAddress: IPAddress("127.0.0.3")!)
        #expect(listed.filter { $0.serverPort == port }.count == 1, "\(listed)")
        #expect(try TCPConnections.count(localAddress: IPAddress("127.0.0.3")!) == listed.count)
    }

    /// The read walks the kernel's socket table once for an IPv4 address: the original request returns the IPv4
    /// sockets and the IPv6 ones whose address is IPv4-mapped together, each with its family.
    @Test func oneWalkReturnsBothFamilies() throws {
        let address = IPAddress("127.0.0.4")!
        let (plain, plainPort) = try Self.connectedPair(address)
        let (dual, dualPort) = try Self.connectedPair(address, dualStack: true)
        defer { for socket in plain + dual { socket.close() } }
        var seen: [(family: Int32, port: UInt16)] = []
        try TCPConnections.dump(.bothFamilies, filter: TCPConnections.localAddressCondition(address)) { message in
            seen.append((Int32(message.idiag_family), UInt16(bigEndian: message.id.idiag_sport)))
        }
        #expect(seen.contains { $0.family == AF_INET && $0.port == plainPort }, "\(seen)")
        #expect(seen.contains { $0.family == AF_INET6 && $0.port == dualPort }, "\(seen)")
        let listed = try TCPConnections.list(localAddress: address)
        #expect(listed.contains { $0.serverPort == plainPort } && listed.contains { $0.serverPort == dualPort })
    }

    /// The bytecode the kernel audits: op (code, yes, no), then family, prefix length, padding, port -1, address.
    @Test func theConditionIsWhatTheKernelExpects() {
        #expect(
            TCPConnections.localAddressCondition(IPAddress("198.18.0.100")!)
                == [7, 16, 20, 0, 2, 32, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 198, 18, 0, 100])
        let six = TCPConnections.localAddressCondition(IPAddress("2001:db8::1")!)
        #expect(six.count == 28 && Array(six.prefix(6)) == [7, 28, 32, 0, 10, 128])
    }
}
