import Crypto
import Hashing
import RouteSetup
import TapEngine
import Testing

@testable import lbnode

/// The start-time probe believes a running node only from a heartbeat that answers the probe's own, from the node's
/// configured address: a replayed heartbeat (naming, say, another delivery mode) counts for nothing.
struct ProbeChallengeTests {
    static var key: SymmetricKey { SymmetricKey(data: Array(repeating: UInt8(7), count: 32)) }
    static let peers = [FarmConfig.Peer(id: NodeID(2)!, address: IPPrefix("198.18.0.12/24")!)]
    static let two = IPAddress("198.18.0.12")!

    static func heartbeat(answering echo: Heartbeat.Echo?, delivery: Delivery = .flood) -> [UInt8] {
        Heartbeat(
            sender: NodeID(2)!, state: .active, healthy: true, leader: true, weight: 100, incarnation: 55, sequence: 9,
            viewDigest: 0, mac: 2, delivery: delivery, echoes: echo.map { [$0] } ?? []
        ).encoded(key: key)
    }

    @Test func aRunningNodeCountsOnlyWhenItAnswersAFreshProbeHeartbeat() {
        var challenge = ProbeChallenge(me: NodeID(3)!)
        let first = challenge.nextHeartbeat(at: 0, weight: 100, mac: 3)
        #expect(first.sender == NodeID(3) && first.state == .joining && first.sequence == 1)
        func answer(_ sequence: UInt64, incarnation: UInt64? = nil) -> Heartbeat.Echo {
            Heartbeat.Echo(
                node: 3, live: false, ageMilliseconds: 2, incarnation: incarnation ?? challenge.incarnation,
                sequence: sequence)
        }
        func running(_ bytes: [UInt8], from source: IPAddress = Self.two, now: Int = 50) -> Heartbeat? {
            challenge.runningNode(bytes, from: source, keys: [Self.key], peers: Self.peers, now: now)
        }
        // A capture from before the probe (no echo of it, or of another incarnation of node 3): nothing.
        #expect(running(Self.heartbeat(answering: nil, delivery: .relay)) == nil)
        #expect(running(Self.heartbeat(answering: answer(1, incarnation: challenge.incarnation &+ 1))) == nil)
        // An answer from another address, or to a probe heartbeat never sent: nothing.
        #expect(running(Self.heartbeat(answering: answer(1)), from: IPAddress("198.18.0.99")!) == nil)
        #expect(running(Self.heartbeat(answering: answer(2))) == nil)
        // The answer, within the window, from node 2's address: node 2 runs, in flood delivery.
        #expect(running(Self.heartbeat(answering: answer(1)))?.delivery == .flood)
        // Too late: the probe heartbeat it answers was sent more than the window ago.
        #expect(running(Self.heartbeat(answering: answer(1)), now: 1001) == nil)
    }
}
