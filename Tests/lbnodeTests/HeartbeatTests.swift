import Crypto
import Hashing
import Testing

@testable import lbnode

struct HeartbeatTests {
    static var key: SymmetricKey { SymmetricKey(data: Array(repeating: UInt8(7), count: 32)) }
    static var otherKey: SymmetricKey { SymmetricKey(data: Array(repeating: UInt8(8), count: 32)) }

    static func heartbeat(from node: UInt16 = 2, incarnation: UInt64 = 1000, sequence: UInt64 = 1) -> Heartbeat {
        Heartbeat(
            sender: NodeID(rawValue: node)!, state: .active, healthy: true, weight: 100,
            incarnation: incarnation, sequence: sequence, viewDigest: 0xABCD_EF01_2345_6789, mac: 0x0200_0000_0002)
    }

    @Test func roundTrips() {
        let bytes = Self.heartbeat().encoded(key: Self.key)
        #expect(bytes.count == Heartbeat.size)
        #expect(Array(bytes[0..<4]) == Array("VFHB".utf8))
        #expect(Heartbeat.decode(bytes, key: Self.key) == .success(Self.heartbeat()))
    }

    @Test func aForgedOrDamagedHeartbeatIsRefused() {
        let bytes = Self.heartbeat().encoded(key: Self.key)
        #expect(Heartbeat.decode(Self.heartbeat().encoded(key: Self.otherKey), key: Self.key) == .failure(.forged))
        var flipped = bytes
        flipped[13] ^= 1  // the weight, under the signature
        #expect(Heartbeat.decode(flipped, key: Self.key) == .failure(.forged))
        #expect(Heartbeat.decode(Array(bytes.prefix(79)), key: Self.key) == .failure(.malformed))
        var newer = bytes
        newer[4] = 2
        #expect(Heartbeat.decode(newer, key: Self.key) == .failure(.unsupportedVersion))
    }

    @Test func theGateRefusesReplaysStaleIncarnationsAndStrangers() {
        var gate = HeartbeatGate(key: Self.key, peers: [NodeID(2)!, NodeID(3)!])
        let first = Self.heartbeat(sequence: 5).encoded(key: Self.key)
        #expect(gate.admit(first) != nil)
        #expect(gate.admit(first) == nil)  // the same datagram again
        #expect(gate.admit(Self.heartbeat(sequence: 4).encoded(key: Self.key)) == nil)  // older
        #expect(gate.admit(Self.heartbeat(sequence: 6).encoded(key: Self.key)) != nil)
        // A restart: a larger incarnation starts its sequence again.
        #expect(gate.admit(Self.heartbeat(incarnation: 2000, sequence: 1).encoded(key: Self.key)) != nil)
        #expect(gate.admit(Self.heartbeat(incarnation: 1000, sequence: 99).encoded(key: Self.key)) == nil)
        #expect(gate.admit(Self.heartbeat(from: 9).encoded(key: Self.key)) == nil)
        #expect(gate.admit(Self.heartbeat(from: 3).encoded(key: Self.otherKey)) == nil)
        #expect(gate.rejected == [.replayed: 3, .unknownNode: 1, .forged: 1])
    }
}
