import Hashing
import Testing

@testable import lbnode

/// Membership on a manual clock (milliseconds): interval 10 ms, dead after 3 missed intervals.
struct MembershipTests {
    static let seed = FarmSeed(farmName: "web")

    static func membership(now: Int = 0) -> Membership {
        Membership(me: NodeID(1)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: seed, now: now)
    }

    static func beat(_ node: UInt16, _ state: MemberState = .active, healthy: Bool = true, sequence: UInt64 = 1)
        -> Heartbeat
    {
        Heartbeat(
            sender: NodeID(rawValue: node)!, state: state, healthy: healthy, weight: 100, incarnation: 1,
            sequence: sequence, viewDigest: 0, mac: 0x0200_0000_0000 + UInt64(node))
    }

    static func ids(_ view: MembershipView) -> [UInt16] { view.ids.map(\.rawValue) }

    @Test func aJoiningNodeGoesActiveOnlyAfterAnnouncingItselfForTheDeadline() {
        var membership = Self.membership()
        #expect(!membership.mayActivate(now: 29))
        #expect(membership.mayActivate(now: 30))
        #expect(membership.view.isEmpty)  // joining: not in the view yet
        _ = membership.setLocal(state: .active)
        #expect(Self.ids(membership.view) == [1])
        #expect(membership.leader == NodeID(1))
    }

    @Test func peersEnterTheViewWhenActiveAndHealthy() {
        var membership = Self.membership()
        _ = membership.setLocal(state: .active)
        #expect(membership.receive(Self.beat(3, .joining), now: 1) == [.peerUp(NodeID(3)!, .joining)])
        #expect(Self.ids(membership.view) == [1])
        let events = membership.receive(Self.beat(3), now: 2)
        #expect(events.first == .peerChanged(NodeID(3)!, .active, healthy: true))
        #expect(Self.ids(membership.view) == [1, 3])
        _ = membership.receive(Self.beat(3, healthy: false), now: 3)
        #expect(Self.ids(membership.view) == [1])  // a failed checker takes it out
    }

    @Test func aSilentPeerDiesAfterTheDeadlineAndALeavingOneAtOnce() {
        var membership = Self.membership()
        _ = membership.setLocal(state: .active)
        _ = membership.receive(Self.beat(2), now: 0)
        _ = membership.receive(Self.beat(3), now: 0)
        #expect(Self.ids(membership.view) == [1, 2, 3])
        _ = membership.receive(Self.beat(3, sequence: 2), now: 20)
        #expect(membership.tick(now: 30).isEmpty)  // 30 ms of silence is still within 3 intervals
        let events = membership.tick(now: 31)
        #expect(events.first == .peerDied(NodeID(2)!, silentMilliseconds: 31))
        #expect(Self.ids(membership.view) == [1, 3])
        _ = membership.receive(Self.beat(3, .left), now: 32)
        #expect(Self.ids(membership.view) == [1])
    }

    @Test func theLeaderIsTheLowestActiveOrDrainingID() {
        var membership = Self.membership()
        _ = membership.receive(Self.beat(5), now: 0)
        _ = membership.receive(Self.beat(4), now: 0)
        #expect(membership.leader == NodeID(4))  // this node is still joining
        _ = membership.setLocal(state: .active)
        #expect(membership.leader == NodeID(1))
        // Draining, it is out of the view but keeps directing (its connections stay) until it leaves.
        _ = membership.setLocal(state: .draining)
        #expect(Self.ids(membership.view) == [4, 5])
        #expect(membership.leader == NodeID(1))
        _ = membership.receive(Self.beat(4, .draining), now: 1)
        _ = membership.setLocal(state: .left)
        #expect(membership.leader == NodeID(4))
    }

    @Test func agreementComparesTheViewDigests() {
        var membership = Self.membership()
        _ = membership.setLocal(state: .active)
        var beat = Self.beat(2)
        _ = membership.receive(beat, now: 0)
        #expect(!membership.agreed)
        beat.viewDigest = membership.view.digest(seed: Self.seed)
        beat.sequence = 2
        _ = membership.receive(beat, now: 1)
        #expect(membership.agreed)
    }

    @Test func healthChangesOnlyAfterStreaks() {
        var health = HealthHysteresis(fails: 3, rises: 2)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: true) == nil)  // the streak starts again
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == false)
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: true) == true)
        #expect(health.healthy)
    }
}
