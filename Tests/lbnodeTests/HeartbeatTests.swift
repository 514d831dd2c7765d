import Crypto
import Hashing
import TapEngine
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

    static let two = IPAddress("198.18.0.12")!
    static let three = IPAddress("198.18.0.13")!

    static func gate(keys: [SymmetricKey] = [key]) -> HeartbeatGate {
        HeartbeatGate(keys: keys, me: NodeID(1)!, peers: [NodeID(2)!: two, NodeID(3)!: three], restartAfter: 30)
    }

    @Test func theGateRefusesReplaysStaleIncarnationsAndStrangers() {
        var gate = Self.gate()
        let first = Self.heartbeat(sequence: 5).encoded(key: Self.key)
        #expect(gate.admit(first, from: Self.two, now: 0) != nil)
        #expect(gate.admit(first, from: Self.two, now: 1) == nil)  // the same datagram again
        #expect(gate.admit(Self.heartbeat(sequence: 4).encoded(key: Self.key), from: Self.two, now: 2) == nil)  // older
        #expect(gate.admit(Self.heartbeat(sequence: 6).encoded(key: Self.key), from: Self.two, now: 3) != nil)
        // While the sender lives, another incarnation is a forgery or a capture (refused before the HMAC)...
        #expect(
            gate.admit(Self.heartbeat(incarnation: 2000, sequence: 1).encoded(key: Self.key), from: Self.two, now: 4)
                == nil)
        #expect(gate.admit(Self.heartbeat(from: 9).encoded(key: Self.key), from: Self.two, now: 6) == nil)
        #expect(gate.admit(Self.heartbeat(from: 3).encoded(key: Self.otherKey), from: Self.three, now: 7) == nil)
        // ... and a restart (random incarnations need not grow) once it has been silent for `restartAfter`.
        #expect(
            gate.admit(Self.heartbeat(incarnation: 7, sequence: 1).encoded(key: Self.key), from: Self.two, now: 35)
                != nil)
        #expect(
            gate.admit(Self.heartbeat(incarnation: 1000, sequence: 7).encoded(key: Self.key), from: Self.two, now: 36)
                == nil)
        #expect(gate.rejected == [.replayed: 2, .otherIncarnation: 2, .unknownNode: 1, .forged: 1])
    }

    @Test func theGateBindsIDsToAddressesAndSeesItsOwnIDElsewhere() {
        var gate = Self.gate()
        // Node 3's heartbeat from node 2's address: refused before its signature is even checked.
        #expect(gate.admit(Self.heartbeat(from: 3).encoded(key: Self.key), from: Self.two, now: 0) == nil)
        #expect(gate.lastWrongSource?.source == Self.two)
        // This node's own ID, authentic, from another address: two nodes share an ID.
        #expect(gate.admit(Self.heartbeat(from: 1).encoded(key: Self.key), from: Self.three, now: 1) == nil)
        #expect(gate.duplicates == [Self.three: 1])
        // A forged one with this node's ID is only a forgery.
        #expect(gate.admit(Self.heartbeat(from: 1).encoded(key: Self.otherKey), from: Self.two, now: 2) == nil)
        #expect(gate.duplicates.count == 1)
        #expect(gate.rejected == [.wrongSource: 1, .duplicateID: 1, .forged: 1])
    }

    @Test func aRotationAcceptsBothKeys() {
        var gate = Self.gate(keys: [Self.key, Self.otherKey])
        #expect(gate.admit(Self.heartbeat(sequence: 1).encoded(key: Self.key), from: Self.two, now: 0) != nil)
        #expect(gate.admit(Self.heartbeat(sequence: 2).encoded(key: Self.otherKey), from: Self.two, now: 1) != nil)
        gate.replaceKeys([Self.otherKey])
        #expect(gate.admit(Self.heartbeat(sequence: 3).encoded(key: Self.key), from: Self.two, now: 2) == nil)
        #expect(gate.rejected == [.forged: 1])
    }

    @Test func flagsRoundTrip() {
        var beat = Self.heartbeat()
        beat.fenced = true
        beat.leader = true
        #expect(Heartbeat.decode(beat.encoded(key: Self.key), key: Self.key) == .success(beat))
    }

    /// Byte 7 names the sender's delivery mode; 0 (older nodes) is "not said".
    @Test(arguments: [(Delivery.flood, UInt8(1)), (.directed, 2), (.relay, 3)])
    func theDeliveryModeRoundTrips(delivery: Delivery, code: UInt8) throws {
        var beat = Self.heartbeat()
        beat.delivery = delivery
        let bytes = beat.encoded(key: Self.key)
        #expect(bytes[7] == code)
        #expect(Heartbeat.decode(bytes, key: Self.key) == .success(beat))
        #expect(try Heartbeat.decode(Self.heartbeat().encoded(key: Self.key), key: Self.key).get().delivery == nil)
    }
}
