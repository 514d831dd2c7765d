import Hashing
import Testing

@testable import TapEngine

/// ICMP and ICMPv6 errors about a connection (fragmentation needed, packet too big, unreachable) come from routers,
/// not from the client: they are keyed by the flow of the packet they quote, so they reach the node that owns it.
extension FrameParserTests {
    static let router = IPAddress("198.18.2.1")!
    static let router6 = IPAddress("2001:db8::1")!

    /// "Fragmentation needed" (type 3, code 4, next-hop MTU 1400) from a router, quoting the IPv4 header and the
    /// first 8 bytes of a segment the VIP sent from `serverPort` to the client's `clientPort`.
    static func fragmentationNeeded(
        quotingClientPort clientPort: UInt16, serverPort: UInt16 = 80, protocol number: UInt8 = 6,
        quotedSource: IPAddress = vip, destinationMAC: UInt64 = vmac, quoteBytes: Int = 28
    ) -> [UInt8] {
        let quoted = PacketBuilder.ip(
            destinationMAC: 0, sourceMAC: 0, source: quotedSource, destination: client, protocol: number,
            payload: PacketBuilder.be16(serverPort) + PacketBuilder.be16(clientPort) + [0, 0, 0, 1, 0, 0, 0, 0]
        ).dropFirst(14)
        let icmp: [UInt8] = [3, 4, 0, 0, 0, 0] + PacketBuilder.be16(1400) + quoted.prefix(quoteBytes)
        return PacketBuilder.ip(
            destinationMAC: destinationMAC, sourceMAC: clientMAC, source: router, destination: vip, protocol: 1,
            payload: icmp)
    }

    @Test func fragmentationNeededIsKeyedByTheQuotedConnection() throws {
        let connection = try Self.parsed(
            PacketBuilder.tcp(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.client, destination: Self.vip,
                sourcePort: 40000, destinationPort: 80, flags: 0x10))
        let error = try Self.parsed(Self.fragmentationNeeded(quotingClientPort: 40000))
        #expect(error.isICMPError)
        #expect(error.key == connection.key)
        #expect(!error.isTCPSyn && !error.isTCPReset)
    }

    @Test func anUnreachableAboutAUDPFlowIsKeyedByIt() throws {
        let datagram = try Self.parsed(Self.udp4)
        let error = try Self.parsed(Self.fragmentationNeeded(quotingClientPort: 40000, serverPort: 53, protocol: 17))
        #expect(error.isICMPError && error.key == datagram.key)
    }

    @Test func packetTooBigIsKeyedByTheQuotedConnection() throws {
        let connection = try Self.parsed(Self.tcp6)
        let quoted = PacketBuilder.tcp(
            destinationMAC: 0, sourceMAC: 0, source: Self.vip6, destination: Self.client6, sourcePort: 443,
            destinationPort: 50000, flags: 0x10
        ).dropFirst(14)
        let icmp: [UInt8] = [2, 0, 0, 0, 0, 0, 0x05, 0x00] + quoted  // packet too big, MTU 1280
        let error = try Self.parsed(
            PacketBuilder.ip(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.router6, destination: Self.vip6,
                protocol: 58, payload: icmp))
        #expect(error.isICMPError)
        #expect(error.key == connection.key)
    }

    /// Not about a packet of the VIP, or quoting too little to say which: keyed by its sender, as any ICMP.
    @Test func anErrorThatQuotesSomethingElseStaysKeyedByItsSender() throws {
        for bytes in [
            Self.fragmentationNeeded(quotingClientPort: 40000, quotedSource: IPAddress("198.18.0.99")!),
            Self.fragmentationNeeded(quotingClientPort: 40000, quoteBytes: 12),
        ] {
            let frame = try Self.parsed(bytes)
            #expect(!frame.isICMPError)
            #expect(frame.key.client == Self.router)
        }
        let echo = PacketBuilder.ip(
            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.client, destination: Self.vip,
            protocol: 1, payload: [8, 0, 0, 0, 0, 1, 0, 1])
        #expect(try !Self.parsed(echo).isICMPError)
    }
}
