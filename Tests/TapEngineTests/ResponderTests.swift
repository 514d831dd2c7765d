import Hashing
import Testing

@testable import TapEngine

struct ResponderTests {
    static let interfaceMAC: UInt64 = 0x0200_0000_0011
    static let clientMAC: UInt64 = 0x0200_0000_0107

    static func state(vip: IPAddress) throws -> EngineState {
        EngineState(
            generation: 1, node: NodeID(1)!, seed: FarmSeed(value: 1), vip: vip, virtualMAC: 0x0242_C612_0064,
            table: try BucketTable.unowned(count: 16), isARPLeader: true)
    }

    static func frame(_ bytes: [UInt8]) -> Frame {
        guard case .frame(let frame) = bytes.withUnsafeBytes({ FrameParser.parse($0) }) else {
            preconditionFailure("golden frame did not parse")
        }
        return frame
    }

    @Test func arpReplyCarriesTheVirtualMacButNotAsEthernetSource() throws {
        let vip = IPAddress("198.18.0.100")!
        let request = Self.frame(
            PacketBuilder.arp(
                operation: 1, ethernetSource: Self.clientMAC,
                ethernetDestination: 0xFFFF_FFFF_FFFF, senderMAC: Self.clientMAC, senderIP: 0xC612_0107, targetMAC: 0,
                targetIP: vip.ipv4Value!))
        let responder = Responder()
        defer { responder.deallocate() }
        let reply = Array(
            responder.arp(to: request, state: try Self.state(vip: vip), ethernetSource: Self.interfaceMAC))
        let expected = PacketBuilder.arp(
            operation: 2, ethernetSource: Self.interfaceMAC,
            ethernetDestination: Self.clientMAC, senderMAC: 0x0242_C612_0064, senderIP: vip.ipv4Value!,
            targetMAC: Self.clientMAC, targetIP: 0xC612_0107)
        #expect(reply == expected + Array(repeating: 0, count: 60 - expected.count))
    }

    @Test func neighbourAdvertisementIsValid() throws {
        let vip = IPAddress("2001:2::100")!
        let client = IPAddress("2001:2::1:1")!
        let solicitation = Self.frame(
            PacketBuilder.ip(
                destinationMAC: 0x3333_FF00_0100, sourceMAC: Self.clientMAC,
                source: client, destination: IPAddress("ff02::1:ff00:100")!, protocol: 58,
                payload: [135, 0, 0, 0, 0, 0, 0, 0] + vip.bytes + [1, 1] + PacketBuilder.macBytes(Self.clientMAC)))
        let responder = Responder()
        defer { responder.deallocate() }
        let advert = Array(
            responder.neighbourAdvertisement(
                to: solicitation, state: try Self.state(vip: vip),
                ethernetSource: Self.interfaceMAC))
        #expect(advert.count == 86)
        #expect(Array(advert[0..<6]) == PacketBuilder.macBytes(Self.clientMAC))
        #expect(Array(advert[6..<12]) == PacketBuilder.macBytes(Self.interfaceMAC))
        #expect(advert[20] == 58 && advert[21] == 255)
        #expect(Array(advert[22..<38]) == vip.bytes)
        #expect(Array(advert[38..<54]) == client.bytes)
        #expect(advert[54] == 136)
        #expect(Array(advert[62..<78]) == vip.bytes)  // target
        #expect(Array(advert[80..<86]) == PacketBuilder.macBytes(0x0242_C612_0064))  // target link-layer address
        // The checksum over the pseudo-header and the message comes out 0 when it is right.
        let pseudo = Array(advert[22..<54]) + [0, 0, 0, 32, 0, 0, 0, 58] + Array(advert[54...])
        #expect(PacketBuilder.internetChecksum(pseudo) == 0)
    }

    /// The announcement of an IPv6 VIP (a director's, every 200 ms, so that the switch learns the virtual MAC on its
    /// port): an unsolicited advertisement to all nodes, override set, solicited not, from the MAC it is sent from.
    @Test func anIPv6VIPIsAnnouncedByAnUnsolicitedAdvertisement() throws {
        let vip = IPAddress("2001:2::100")!
        let responder = Responder()
        defer { responder.deallocate() }
        let virtualMAC: UInt64 = 0x0242_C612_0064
        let advert = Array(
            responder.neighbourAdvertisement(to: nil, state: try Self.state(vip: vip), ethernetSource: virtualMAC))
        #expect(advert.count == 86)
        #expect(Array(advert[0..<6]) == [0x33, 0x33, 0, 0, 0, 1])
        #expect(Array(advert[6..<12]) == PacketBuilder.macBytes(virtualMAC))
        #expect(advert[21] == 255)
        #expect(Array(advert[38..<54]) == IPAddress("ff02::1")!.bytes)
        #expect(advert[54] == 136 && advert[58] == 0x20, "override, not solicited")
        #expect(Array(advert[62..<78]) == vip.bytes)
        #expect(Array(advert[80..<86]) == PacketBuilder.macBytes(virtualMAC))
        let pseudo = Array(advert[22..<54]) + [0, 0, 0, 32, 0, 0, 0, 58] + Array(advert[54...])
        #expect(PacketBuilder.internetChecksum(pseudo) == 0)
    }

    @Test func duplicateAddressDetectionIsNotAnswered() throws {
        let vip = IPAddress("2001:2::100")!
        let probe = Self.frame(
            PacketBuilder.ip(
                destinationMAC: 0x3333_FF00_0100, sourceMAC: Self.clientMAC,
                source: IPAddress("::")!, destination: IPAddress("ff02::1:ff00:100")!, protocol: 58,
                payload: [135, 0, 0, 0, 0, 0, 0, 0] + vip.bytes))
        let responder = Responder()
        defer { responder.deallocate() }
        #expect(
            responder.neighbourAdvertisement(
                to: probe, state: try Self.state(vip: vip),
                ethernetSource: Self.interfaceMAC
            ).count == 0)
    }
}
