import Hashing
import Testing

@testable import TapEngine

/// Golden frames from the packet builder, every truncation of them, and random bytes.
struct FrameParserTests {
    static let vip = IPAddress("198.18.0.100")!
    static let client = IPAddress("198.18.1.7")!
    static let vip6 = IPAddress("2001:db8::100")!
    static let client6 = IPAddress("2001:db8::7")!
    static let vmac: UInt64 = 0x02F9_C612_0064
    static let clientMAC: UInt64 = 0x0200_0000_0107

    static func parse(_ bytes: [UInt8]) -> ParseOutcome {
        bytes.withUnsafeBytes { FrameParser.parse($0) }
    }

    static func parsed(_ bytes: [UInt8]) throws -> Frame {
        guard case .frame(let frame) = parse(bytes) else { throw ParseFailure(outcome: parse(bytes)) }
        return frame
    }

    struct ParseFailure: Error { let outcome: ParseOutcome }

    static var udp4: [UInt8] {
        PacketBuilder.udp(
            destinationMAC: vmac, sourceMAC: clientMAC, source: client, destination: vip,
            sourcePort: 40000, destinationPort: 53, payload: Array(repeating: 7, count: 10))
    }

    static var tcp6: [UInt8] {
        PacketBuilder.tcp(
            destinationMAC: vmac, sourceMAC: clientMAC, source: client6, destination: vip6,
            sourcePort: 50000, destinationPort: 443, flags: 0x02)
    }

    static var arpRequest: [UInt8] {
        PacketBuilder.arp(
            operation: 1, ethernetSource: clientMAC, ethernetDestination: 0xFFFF_FFFF_FFFF,
            senderMAC: clientMAC, senderIP: client.ipv4Value!, targetMAC: 0, targetIP: vip.ipv4Value!)
    }

    @Test func udpOverIPv4() throws {
        let frame = try Self.parsed(Self.udp4)
        #expect(frame.kind == .ip)
        #expect(frame.destinationMAC == Self.vmac)
        #expect(frame.sourceMAC == Self.clientMAC)
        #expect(frame.key == FlowKey(client: Self.client, clientPort: 40000, serverPort: 53, proto: .udp))
        #expect(frame.destination == Self.vip)
        #expect(!frame.isFragment)
    }

    @Test func tcpOverIPv6WithFlags() throws {
        let frame = try Self.parsed(Self.tcp6)
        #expect(frame.key == FlowKey(client: Self.client6, clientPort: 50000, serverPort: 443, proto: .tcp))
        #expect(frame.destination == Self.vip6)
        #expect(frame.isTCPSyn)
        #expect(!frame.isTCPFin)
    }

    @Test func vlanTaggedFrame() throws {
        let bytes = PacketBuilder.udp(
            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.client,
            destination: Self.vip, sourcePort: 1, destinationPort: 2, payload: [], vlan: 100)
        let frame = try Self.parsed(bytes)
        #expect(frame.networkOffset == 18)
        #expect(frame.key.serverPort == 2)
    }

    @Test func ipv4OptionsAreSkipped() throws {
        let udp: [UInt8] = [0x9C, 0x40, 0x00, 0x35, 0, 8, 0, 0]
        let bytes = PacketBuilder.ip(
            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.client,
            destination: Self.vip, protocol: 17, payload: udp, options: [1, 1, 1, 0])  // NOPs and end of options
        let frame = try Self.parsed(bytes)
        #expect(frame.key.clientPort == 40000)
        #expect(frame.key.serverPort == 53)
    }

    @Test func ipv4FragmentsAreMarkedAndLaterOnesHaveNoPorts() throws {
        let udp: [UInt8] = [0x9C, 0x40, 0x00, 0x35, 0, 100, 0, 0]
        let first = try Self.parsed(
            PacketBuilder.ip(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC,
                source: Self.client, destination: Self.vip, protocol: 17, payload: udp, fragment: 0x2000))
        #expect(first.isFragment && !first.isLaterFragment && first.fragmentID == 0x1234)
        let later = try Self.parsed(
            PacketBuilder.ip(
                destinationMAC: Self.vmac, sourceMAC: Self.clientMAC,
                source: Self.client, destination: Self.vip, protocol: 17, payload: [1, 2, 3, 4], fragment: 0x0003))
        #expect(later.isFragment && later.isLaterFragment && later.fragmentID == 0x1234)
        #expect(later.key.clientPort == 0)
        #expect(later.key.proto == .udp)
    }

    @Test func ipv6ExtensionHeadersAndFragments() throws {
        let udp: [UInt8] = [0x9C, 0x40, 0x00, 0x35, 0, 8, 0, 0]
        // Hop-by-hop (8 bytes: next = fragment), fragment header (next = UDP, offset 0, M set), UDP.
        let hopByHop: [UInt8] = [44, 0, 1, 4, 0, 0, 0, 0]
        let fragmentHeader: [UInt8] = [17, 0, 0x00, 0x01, 0, 0, 0, 9]
        let bytes = PacketBuilder.ip(
            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.client6,
            destination: Self.vip6, protocol: 0, payload: hopByHop + fragmentHeader + udp)
        let frame = try Self.parsed(bytes)
        #expect(frame.isFragment && !frame.isLaterFragment && frame.fragmentID == 9)
        #expect(frame.key.proto == .udp)
        #expect(frame.key.clientPort == 40000)
        let later = PacketBuilder.ip(
            destinationMAC: Self.vmac, sourceMAC: Self.clientMAC, source: Self.client6,
            destination: Self.vip6, protocol: 44, payload: [17, 0, 0x05, 0x00, 0, 0, 0, 9, 1, 2, 3, 4])
        let laterFrame = try Self.parsed(later)
        #expect(laterFrame.isFragment && laterFrame.isLaterFragment && laterFrame.fragmentID == 9)
        #expect(laterFrame.key.clientPort == 0)
    }

    @Test func arpRequestForTheVip() throws {
        let frame = try Self.parsed(Self.arpRequest)
        #expect(frame.kind == .arpRequest)
        #expect(frame.destination == Self.vip)
        #expect(frame.key.client == Self.client)
    }

    @Test func neighbourSolicitation() throws {
        let icmp: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0] + Self.vip6.bytes
        let frame = try Self.parsed(
            PacketBuilder.ip(
                destinationMAC: 0x3333_FF00_0100, sourceMAC: Self.clientMAC,
                source: Self.client6, destination: IPAddress("ff02::1:ff00:100")!, protocol: 58, payload: icmp))
        #expect(frame.kind == .neighbourSolicitation)
        #expect(frame.destination == Self.vip6)
    }

    @Test func everyTruncationIsDroppedWithAReason() {
        for golden in [Self.udp4, Self.tcp6, Self.arpRequest] {
            for length in 0..<golden.count {
                guard case .drop(let reason) = Self.parse(Array(golden.prefix(length))) else {
                    Issue.record("a \(length)-byte prefix of a \(golden.count)-byte frame parsed")
                    continue
                }
                #expect(reason.isMalformed)
            }
        }
    }

    @Test func malformedHeadersAreDropped() {
        var badVersion = Self.udp4
        badVersion[14] = 0x55
        #expect(Self.parse(badVersion) == .drop(.badIPv4Header))
        var shortHeader = Self.udp4
        shortHeader[14] = 0x44
        #expect(Self.parse(shortHeader) == .drop(.badIPv4Header))
        var lengthPastEnd = Self.udp4
        lengthPastEnd[17] = 0xFF
        #expect(Self.parse(lengthPastEnd) == .drop(.truncatedIPv4))
        var tcpOffset = Self.tcp6
        tcpOffset[14 + 40 + 12] = 0x40
        #expect(Self.parse(tcpOffset) == .drop(.badTransportHeader))
        var otherEtherType = Self.udp4
        otherEtherType[12] = 0x88
        #expect(Self.parse(otherEtherType) == .drop(.unsupportedEtherType))
    }

    @Test func randomBytesNeverCrash() {
        var random = SeededGenerator(seed: 99)
        var parsedCount = 0
        for _ in 0..<100_000 {
            let length = Int.random(in: 0...128, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if length > 14, Bool.random(using: &random) {  // make some of them look like IP to go deeper
                bytes[12] = 0x08
                bytes[13] = 0x00
                bytes[14] = 0x45
            }
            if case .frame = Self.parse(bytes) { parsedCount += 1 }
        }
        #expect(parsedCount < 100_000)
    }
}
