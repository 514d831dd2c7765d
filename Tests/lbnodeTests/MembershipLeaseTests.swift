import Hashing
import Testing

@testable import lbnode

/// The engine's lease (`Membership.servingEnds`) on a manual clock (interval 10 ms, dead after 3): it ends exactly
/// when the loop's own checks stand the node down if nothing more is heard, so an engine whose loop turns late stops
/// when an engine whose loop turns on time does.
struct MembershipLeaseTests {
    typealias M = MembershipTests

    /// Ticks a copy of `membership` one millisecond at a time with nothing heard: the first tick that fences must be
    /// the lease's end (none within a second when there is no end).
    static func expectTheLoopFencesAtTheLeasesEnd(
        _ membership: Membership, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var loop = membership
        let ends = membership.servingEnds
        let start = membership.latest + 1
        let fencedAt = (start...start + 1000).first { now in
            loop.tick(now: now).contains { if case .fenced = $0 { true } else { false } }
        }
        #expect(fencedAt == ends, "the loop fenced at \(String(describing: fencedAt))", sourceLocation: sourceLocation)
    }

    /// Three nodes, `quorum: majority`, node 3 cut off after its peers' heartbeats at 20 (they heard it 9 ms before):
    /// it must stop at 41, before they may declare it dead at 42.
    @Test func aNodeCutOffFromTheMajorityStopsWhenItsEarlyCheckWould() {
        var membership = M.node3HeardLastAt20()
        #expect(membership.servingEnds == 41)
        Self.expectTheLoopFencesAtTheLeasesEnd(membership)
        // Node 1 heard again at 30: one peer is a majority of three with this node, so node 2's silence alone does
        // not stop it; the lease runs to node 1's early window.
        _ = membership.receive(M.beat(1, sequence: 3, age: 1, hears: [2], to: 3), now: 30)
        #expect(membership.servingEnds == 55)
        Self.expectTheLoopFencesAtTheLeasesEnd(membership)
    }

    /// Two nodes and a witness: the lease runs to the early check of the peer's silence, counted from when the peer
    /// heard this node; once the peer is dead and the witness answered after the cut, to that answer's timeout.
    @Test func withAWitnessTheLeaseFollowsThePeerAndThenTheWitness() {
        var membership = M.pairWithWitness()
        _ = membership.receive(M.beat(2, sequence: 3, age: 5), now: 20)
        #expect(membership.servingEnds == 41)
        Self.expectTheLoopFencesAtTheLeasesEnd(membership)
        membership.witnessAnswered(at: 32)  // a ping sent after node 2's next heartbeat was due
        #expect(membership.tick(now: 51).contains(.peerDied(NodeID(2)!, silentMilliseconds: 31)))
        #expect(membership.fence == nil && membership.servingEnds == 1033)
        Self.expectTheLoopFencesAtTheLeasesEnd(membership)
    }

    /// Nothing this node could miss stands it down: two nodes, `quorum: none`, no witness (each serves what its own
    /// view gives it). Only the lease from its own heartbeats applies (`NodeLoop`).
    @Test func withoutQuorumOrWitnessSilenceEndsNoLease() {
        var membership = M.membership()
        _ = membership.receive(M.beat(2), now: 0)
        _ = membership.setLocal(state: .active)
        _ = membership.receive(M.beat(2, sequence: 2), now: 10)
        #expect(membership.servingEnds == nil)
        Self.expectTheLoopFencesAtTheLeasesEnd(membership)
    }

    /// A node that serves nothing (joining, or fenced) has no lease to end: its engine runs an empty state.
    @Test func aNodeThatServesNothingHasNoEnd() {
        var membership = M.farmOfThree()
        _ = membership.receive(M.beat(1, to: 3), now: 0)
        #expect(membership.state == .joining && membership.servingEnds == nil)
        _ = membership.setLocal(state: .active)
        #expect(membership.fence(.stalled, now: 5).first == .fenced(.stalled))
        #expect(membership.servingEnds == nil)
    }
}
