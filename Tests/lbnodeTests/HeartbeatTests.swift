import Crypto
import Hashing
import TapEngine
import Testing

@testable import lbnode

struct HeartbeatTests {
    static var key: SymmetricKey { SymmetricKey(data: Array(repeating: UInt8(7), count: 32)) }
    static var otherKey: SymmetricKey { SymmetricKey(data: Array(repeating: UInt8(8), count: 32)) }

    /// Node `node`'s heartbeat, answering node 1's heartbeat `answering` (incarnation 77) unless nil.
    static func heartbeat(
        from node: UInt16 = 2, incarnation: UInt64 = 1000, sequence: UInt64 = 1, answering: UInt64? = 5,
        answeredIncarnation: UInt64 = 77
    ) -> Heartbeat {
        Heartbeat(
            sender: NodeID(rawValue: node)!, state: .active, healthy: true, weight: 100,
            incarnation: incarnation, sequence: sequence, viewDigest: 0xABCD_EF01_2345_6789, mac: 0x0200_0000_0002,
            echoes: answering.map {
                [Heartbeat.Echo(node: 1, live: false, ageMilliseconds: 3, incarnation: answeredIncarnation, sequence: $0)]
            } ?? [])
    }

    @Test func roundTrips() {
        let bytes = Self.heartbeat().encoded(key: Self.key)
        #expect(bytes.count == Heartbeat.size + Heartbeat.echoSize)
        #expect(Array(bytes[0..<4]) == Array("VFHB".utf8))
        #expect(Heartbeat.decode(bytes, key: Self.key) == .success(Self.heartbeat()))
        let none = Self.heartbeat(answering: nil)
        #expect(Heartbeat.decode(none.encoded(key: Self.key), key: Self.key) == .success(none))
        #expect(none.encoded(key: Self.key).count == Heartbeat.size)
    }

    @Test func aForgedOrDamagedHeartbeatIsRefused() {
        let bytes = Self.heartbeat().encoded(key: Self.key)
        #expect(Heartbeat.decode(Self.heartbeat().encoded(key: Self.otherKey), key: Self.key) == .failure(.forged))
        var flipped = bytes
        flipped[13] ^= 1  // the weight, under the signature
        #expect(Heartbeat.decode(flipped, key: Self.key) == .failure(.forged))
        #expect(Heartbeat.decode(Array(bytes.prefix(79)), key: Self.key) == .failure(.malformed))
        #expect(Heartbeat.decode(Array(bytes.prefix(100)), key: Self.key) == .failure(.malformed))
        var moreEchoes = bytes
        moreEchoes[11] = 2  // says two echoes, carries one
        #expect(Heartbeat.decode(moreEchoes, key: Self.key) == .failure(.malformed))
        var newer = bytes
        newer[4] = 3
        #expect(Heartbeat.decode(newer, key: Self.key) == .failure(.unsupportedVersion))
    }

    static let two = IPAddress("198.18.0.12")!
    static let three = IPAddress("198.18.0.13")!

    /// Node 1's gate (incarnation 77), which sent its heartbeat 5 at 0.
    static func gate(keys: [SymmetricKey] = [key]) -> HeartbeatGate {
        var gate = HeartbeatGate(
            keys: keys, me: NodeID(1)!, peers: [NodeID(2)!: two, NodeID(3)!: three], restartAfter: 30, incarnation: 77,
            interval: 10)
        gate.noteSent(sequence: 5, at: 0)
        return gate
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

    /// A sender that is not live is taken in only once it answers: its heartbeat echoes this node's incarnation and a
    /// sequence sent within the answer window. Until then it is a challenge, which this node's heartbeats echo.
    @Test func aNewIncarnationCountsOnlyWhenItAnswersThisNodesChallenge() {
        var gate = Self.gate()
        func admit(_ sequence: UInt64, answering: UInt64? = 5, incarnation answered: UInt64 = 77, now: Int) -> Bool {
            let beat = Self.heartbeat(sequence: sequence, answering: answering, answeredIncarnation: answered)
            return gate.admit(beat.encoded(key: Self.key), from: Self.two, now: now) != nil
        }
        #expect(!admit(1, answering: nil, now: 1))
        #expect(gate.challenges[NodeID(2)!] == HeartbeatGate.Challenge(incarnation: 1000, sequence: 1, at: 1))
        // Another incarnation of this node (a capture from before it restarted), or a sequence it never sent.
        #expect(!admit(2, incarnation: 76, now: 2))
        #expect(!admit(3, answering: 4, now: 3))
        // The answer: taken in, the challenge settled.
        #expect(admit(4, now: 4))
        #expect(gate.challenges[NodeID(2)!] == nil)
        // Live now: its next heartbeats need no answer.
        #expect(admit(5, answering: nil, now: 14))
        // Silent for long (it does not hear this node, and sends once a second): the same incarnation, further on,
        // still needs no answer; an older sequence of it is a replay.
        #expect(admit(9, answering: nil, now: 1000))
        #expect(!admit(8, answering: nil, now: 2000))
        #expect(gate.rejected == [.unanswered: 3, .replayed: 1])
    }

    /// The replay of a capture: node 2 dies, comes back with another incarnation and dies again; its first
    /// incarnation's heartbeats, replayed later, answer a challenge long past and change nothing, while a heartbeat
    /// that answers a recent one is taken in.
    @Test func aReplayFromAnEarlierCaptureChangesNothing() {
        var gate = Self.gate()
        let captured = (0..<5).map { Self.heartbeat(sequence: UInt64(10 + $0)).encoded(key: Self.key) }
        #expect(gate.admit(captured[0], from: Self.two, now: 1) != nil)
        #expect(
            gate.admit(Self.heartbeat(incarnation: 2000, sequence: 1).encoded(key: Self.key), from: Self.two, now: 40)
                != nil)
        for sequence in UInt64(6)...20 { gate.noteSent(sequence: sequence, at: 40 + Int(sequence) * 10) }
        for (index, bytes) in captured.dropFirst().enumerated() {
            #expect(gate.admit(bytes, from: Self.two, now: 250 + index * 10) == nil)
        }
        #expect(gate.rejected == [.unanswered: 4])
        #expect(
            gate.admit(
                Self.heartbeat(incarnation: 3000, sequence: 1, answering: 20).encoded(key: Self.key), from: Self.two,
                now: 295) != nil)
    }

    /// A flood of made-up incarnations in the name of a peer that is not live costs one HMAC per interval (so does
    /// one in this node's own name); the incarnation of an authentic challenge is always checked, so a real restart
    /// is not held up by it once seen.
    @Test func unknownIncarnationsOfAPeerThatIsNotLiveCostOneHMACPerInterval() {
        var gate = Self.gate()
        func admit(_ node: UInt16, _ incarnation: UInt64, sequence: UInt64 = 1, key: SymmetricKey, answering: UInt64? = 5,
            now: Int) -> Heartbeat?
        {
            gate.admit(
                Self.heartbeat(from: node, incarnation: incarnation, sequence: sequence, answering: answering)
                    .encoded(key: key), from: Self.three, now: now)
        }
        for incarnation in UInt64(1)...100 {
            _ = admit(3, incarnation, key: Self.otherKey, now: 1)
            _ = admit(1, incarnation, key: Self.otherKey, now: 1)
        }
        #expect(gate.rejected == [.forged: 2, .throttled: 198])
        // The next interval, the real node 3 starts: its first heartbeat is checked (a challenge), its answer too.
        #expect(admit(3, 500, key: Self.key, answering: nil, now: 11) == nil)
        _ = admit(3, 501, key: Self.otherKey, now: 12)
        #expect(admit(3, 500, sequence: 2, key: Self.key, now: 13) != nil)
        #expect(gate.rejected == [.forged: 2, .throttled: 199, .unanswered: 1])
    }

    /// This node's own ID from another address counts as a duplicate only when it answers this node: a replay of this
    /// node's own heartbeat (which echoes its peers, not itself) does not fence it.
    @Test func aDuplicateIDMustAnswer() {
        var gate = Self.gate()
        #expect(gate.admit(Self.heartbeat(from: 1, answering: nil).encoded(key: Self.key), from: Self.three, now: 1) == nil)
        #expect(gate.duplicates.isEmpty)
        #expect(gate.challenges[NodeID(1)!]?.incarnation == 1000)
        #expect(gate.admit(Self.heartbeat(from: 1).encoded(key: Self.key), from: Self.three, now: 2) == nil)
        #expect(gate.duplicates == [Self.three: 2])
        #expect(gate.rejected == [.unanswered: 1, .duplicateID: 1])
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
