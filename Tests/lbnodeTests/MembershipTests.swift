import Hashing
import Testing

@testable import lbnode

/// Membership on a manual clock (milliseconds): interval 10 ms, dead after 3 missed intervals.
struct MembershipTests {
    static let seed = FarmSeed(farmName: "web")

    static func membership(now: Int = 0) -> Membership {
        Membership(me: NodeID(1)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: seed, now: now)
    }

    /// Node `node`'s heartbeat, which hears `listener` (and `hears`, heard `age` ms ago) unless `hearsMe` is false.
    static func beat(
        _ node: UInt16, _ state: MemberState = .active, healthy: Bool = true, sequence: UInt64 = 1,
        hearsMe: Bool = true, age: UInt32 = 0, hears: [UInt16] = [], to listener: UInt16 = 1, deadline: UInt16 = 0
    ) -> Heartbeat {
        Heartbeat(
            sender: NodeID(rawValue: node)!, state: state, healthy: healthy, weight: 100, incarnation: 1,
            sequence: sequence, viewDigest: 0, mac: 0x0200_0000_0000 + UInt64(node), deadlineMilliseconds: deadline,
            echoes: ((hearsMe ? [listener] : []) + hears).map {
                Heartbeat.Echo(node: $0, live: true, ageMilliseconds: age, incarnation: 1, sequence: 1)
            })
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
        #expect(membership.nextExpiry == 31)  // the loop turns then, whatever else it waits for
        #expect(membership.tick(now: 30).isEmpty)  // 30 ms of silence is still within 3 intervals
        let events = membership.tick(now: 31)
        #expect(events.first == .peerDied(NodeID(2)!, silentMilliseconds: 31))
        #expect(Self.ids(membership.view) == [1, 3] && membership.nextExpiry == 51)
        _ = membership.receive(Self.beat(3, .left), now: 32)
        #expect(Self.ids(membership.view) == [1])
    }

    /// A peer that stops (SIGTERM) leaves the view at once and no longer counts for the quorum, but stays among the
    /// peers, so its connections keep their marks, for the restart window; back within it, it is the same peer
    /// joining again; not back, it is gone as if it had left, not dead.
    @Test func aStoppedPeerLeavesTheViewAtOnceAndIsKeptForTheRestartWindow() {
        var membership = Membership(
            me: NodeID(1)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: Self.seed, now: 0,
            peers: [NodeID(2)!, NodeID(3)!], quorum: .majority)
        _ = membership.receive(Self.beat(2), now: 0)
        _ = membership.receive(Self.beat(3), now: 0)
        _ = membership.setLocal(state: .active)
        #expect(Self.ids(membership.view) == [1, 2, 3])
        let stopped = membership.receive(Self.beat(3, .stopped, sequence: 2), now: 5)
        #expect(stopped.contains(.peerChanged(NodeID(3)!, .stopped, healthy: true)))
        #expect(Self.ids(membership.view) == [1, 2] && membership.stoppedPeers == [NodeID(3)!])
        #expect(membership.expectedVotes == 2 && membership.liveVotes == 2 && membership.hasQuorum)
        // Node 2 keeps beating; node 3 is silent, yet not dead within the window.
        for now in stride(from: 10, through: Membership.restartWindowMilliseconds, by: 10) {
            _ = membership.receive(Self.beat(2, sequence: UInt64(now)), now: now)
            #expect(!membership.tick(now: now).contains { if case .peerDied = $0 { true } else { false } })
        }
        #expect(membership.stoppedPeers == [NodeID(3)!])
        #expect(!membership.someoneSilent(now: 15_000, longerThan: 15))  // nobody pings the witness for it
        let gone = membership.tick(now: Membership.restartWindowMilliseconds + 6)
        #expect(gone == [.peerLeft(NodeID(3)!)] && membership.stoppedPeers.isEmpty && membership.hasDeparted(NodeID(3)!))

        // Back within the window: joining, counted again.
        var again = Self.membership()
        _ = again.receive(Self.beat(3), now: 0)
        _ = again.receive(Self.beat(3, .stopped, sequence: 2), now: 1)
        _ = again.receive(Self.beat(3, .joining, sequence: 3), now: 2000)
        #expect(again.stoppedPeers.isEmpty && !again.hasDeparted(NodeID(3)!) && again.peers[NodeID(3)!]?.state == .joining)
    }

    /// A peer whose host refused a heartbeat (port unreachable: no lbnode) is dead at once; a stopped one (a restart)
    /// is not touched, nor one never heard.
    @Test func aPeerWhoseHostRefusesAHeartbeatIsDeadAtOnce() {
        var membership = Self.membership()
        _ = membership.setLocal(state: .active)
        _ = membership.receive(Self.beat(2), now: 0)
        _ = membership.receive(Self.beat(3), now: 0)
        // A refusal of a heartbeat sent before the peer was last heard: from before its lbnode listened.
        #expect(membership.refused(by: NodeID(2)!, heartbeatSentAt: 0, now: 5).isEmpty)
        #expect(membership.refused(by: NodeID(2)!, heartbeatSentAt: 4, now: 5).first == .peerRefused(NodeID(2)!))
        #expect(Self.ids(membership.view) == [1, 3] && membership.peers[NodeID(2)!] == nil)
        _ = membership.receive(Self.beat(3, .stopped, sequence: 2), now: 6)
        #expect(membership.refused(by: NodeID(3)!, heartbeatSentAt: 7, now: 7).isEmpty)
        #expect(membership.stoppedPeers == [NodeID(3)!])
        #expect(membership.refused(by: NodeID(4)!, heartbeatSentAt: 8, now: 8).isEmpty)
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

    static func farmOfThree(now: Int = 0) -> Membership {
        Membership(
            me: NodeID(3)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: seed, now: now,
            peers: [NodeID(1)!, NodeID(2)!], quorum: .majority)
    }

    @Test func aNodeCutOffFromTheMajorityFencesAndRejoinsOnlyAfterHearingEveryone() {
        var membership = Self.farmOfThree()
        _ = membership.receive(Self.beat(1, to: 3), now: 0)
        _ = membership.receive(Self.beat(2, to: 3), now: 0)
        #expect(membership.mayActivate(now: 30))
        _ = membership.setLocal(state: .active)
        #expect(Self.ids(membership.view) == [1, 2, 3])
        #expect(membership.hasQuorum && membership.fence == nil)
        // Node 2 dies: two of three still make a majority.
        _ = membership.receive(Self.beat(1, sequence: 2, to: 3), now: 20)
        #expect(membership.tick(now: 31).contains(.peerDied(NodeID(2)!, silentMilliseconds: 31)))
        #expect(membership.hasQuorum && membership.fence == nil)
        // Node 1 too: alone, one of three, no quorum: fenced, out of its own view, no leader.
        let events = membership.tick(now: 51)
        #expect(events.contains(.fenced(.noQuorum)))
        #expect(membership.state == .joining && membership.view.isEmpty && membership.leader == nil)
        #expect(!membership.agreed)
        // Node 1 is heard again: quorum, but node 2... is dead, so only node 1 must be heard: the fence lifts, and
        // the node rejoins as a new one would (active only after the deadline).
        _ = membership.receive(Self.beat(1, sequence: 3, to: 3), now: 60)
        #expect(membership.liftFence(now: 60) == [.unfenced])
        #expect(!membership.mayActivate(now: 89) && membership.mayActivate(now: 90))
    }

    /// Node 3 of three, active, its peers heard at 0 and last at 20, each saying it heard node 3 9 ms before.
    static func node3HeardLastAt20() -> Membership {
        var membership = farmOfThree()
        _ = membership.receive(beat(1, to: 3), now: 0)
        _ = membership.receive(beat(2, to: 3), now: 0)
        _ = membership.setLocal(state: .active)
        _ = membership.receive(beat(1, sequence: 2, age: 9, hears: [2], to: 3), now: 20)
        _ = membership.receive(beat(2, sequence: 2, age: 9, hears: [1], to: 3), now: 20)
        return membership
    }

    /// A partition cuts node 3 off just after its peers' last heartbeats, which say they heard it 9 ms before they
    /// left: they declare it dead 30 ms after that (at 42), so it fences before (at 41, counting from half an
    /// interval before it heard them), not half an interval after its own hearing (at 46, after they took over).
    @Test func aNodeCutOffFencesBeforeItsPeersCanDeclareItDead() {
        var membership = Self.node3HeardLastAt20()
        #expect(membership.heardMe(membership.peers[NodeID(1)!]!) == 15)
        #expect(membership.nextExpiry == 41)  // the loop turns then to check
        #expect(membership.tick(now: 40).isEmpty)
        #expect(membership.tick(now: 41).contains(.fenced(.noQuorum)))
        #expect(membership.state == .joining && Self.ids(membership.view) == [1, 2])
    }

    /// Node 3 of a farm of three, node 2 not running: node 1, silent for most of the deadline (a busy host), hears
    /// nobody but node 3, so it cannot take node 3's buckets without it: node 3 does not fence early, only once node 1
    /// is dead and the quorum with it. (Its heartbeat 30 ms late lengthens node 3's deadline to 60 ms.)
    @Test func aPeerThatCannotServeWithoutThisNodeFencesNobodyEarly() {
        var membership = Self.farmOfThree()
        _ = membership.receive(Self.beat(1, to: 3), now: 0)
        _ = membership.setLocal(state: .active)
        _ = membership.receive(Self.beat(1, sequence: 2, age: 9, to: 3), now: 20)
        #expect(membership.tick(now: 41).isEmpty && membership.tick(now: 50).isEmpty)
        _ = membership.receive(Self.beat(1, sequence: 3, age: 1, to: 3), now: 50)  // its late heartbeat
        #expect(membership.appliedDeadline(now: 50) == 60)
        #expect(membership.tick(now: 109).isEmpty && membership.fence == nil)
        let dead = membership.tick(now: 111)
        #expect(dead.contains(.peerDied(NodeID(1)!, silentMilliseconds: 61)) && dead.contains(.fenced(.noQuorum)))
    }

    /// Node 3 of three. Node 2's lbnode is killed and its kernel refuses node 3's heartbeat; node 1's last heartbeat,
    /// sent before it noticed, still echoes node 2, and then node 1 is late (a survivor busy with the failover). That
    /// echo makes no majority for node 1 without node 3: node 3 keeps serving until node 1 is dead. Had node 2 only
    /// fallen silent (it may live beyond a cut that isolates node 3), node 3 stands down at the early window.
    @Test func anEchoOfAPeerWhoseKernelRefusedUsMakesNoMajority() {
        for refused in [true, false] {
            var membership = Self.farmOfThree()
            _ = membership.receive(Self.beat(1, hears: [2], to: 3), now: 0)
            _ = membership.receive(Self.beat(2, hears: [1], to: 3), now: 0)
            _ = membership.setLocal(state: .active)
            _ = membership.receive(Self.beat(1, sequence: 2, hears: [2], to: 3), now: 10)
            _ = membership.receive(Self.beat(2, sequence: 2, hears: [1], to: 3), now: 10)
            if refused {
                let gone = membership.refused(by: NodeID(2)!, heartbeatSentAt: 11, now: 12)
                #expect(gone.contains(.peerRefused(NodeID(2)!)))
            }
            let early = membership.tick(now: 36)  // past the early window (25 ms) of node 1's last word
            #expect(early.contains(.fenced(.noQuorum)) != refused, "refused: \(refused), \(early)")
            if refused {
                #expect(membership.tick(now: 41).contains(.fenced(.noQuorum)))  // node 1 dead: 1 of 3
            }
        }
    }

    // MARK: - Receive loss

    @Test func receiveLossLengthensTheDeadlineForAsLongAsAPeerMayGoByIt() {
        var tolerance = DeadlineTolerance(intervalMilliseconds: 10, deadAfter: 3)
        var grew = tolerance.note(drops: 500, now: 0)
        #expect(!grew)  // the first reading is the baseline
        var said = tolerance.announce(now: 0)
        #expect(said == 30 && tolerance.applied(now: 0) == 30)
        grew = tolerance.note(drops: 510, now: 5)
        #expect(!grew)  // a few drops are not loss
        grew = tolerance.note(drops: 530, now: 10)
        said = tolerance.announce(now: 10)
        #expect(grew && said == 100 && tolerance.applied(now: 10) == 100)
        grew = tolerance.note(drops: 530, now: 1_000)
        said = tolerance.announce(now: 30_000)
        #expect(!grew && said == 100)  // 30 s after the last drop, still under loss
        said = tolerance.announce(now: 30_011)
        #expect(said == 30)  // then the farm's deadline is said again...
        // ... but applied until no peer can go by the last heartbeat that said 100.
        #expect(tolerance.applied(now: 30_100) == 100 && tolerance.applied(now: 30_101) == 30)
        grew = tolerance.note(drops: 3, now: 30_200)
        #expect(!grew)  // a re-created interface starts from zero: a new baseline
        #expect(tolerance.applied(now: 30_200) == 30)
        // Never shorter than the farm's.
        #expect(DeadlineTolerance(intervalMilliseconds: 50, deadAfter: 5).longMilliseconds == 250)
    }

    @Test func lateHeartbeatsLengthenTheDeadlineToTwiceTheLongestSilence() {
        var tolerance = DeadlineTolerance(intervalMilliseconds: 4, deadAfter: 4)
        /// Notes a silence at `now`: whether it lengthened the deadline, and what a heartbeat sent then says.
        func heard(after silence: Int, at now: Int) -> (lengthened: Bool, said: Int) {
            let lengthened = tolerance.note(silence: silence, now: now)
            return (lengthened, tolerance.announce(now: now))
        }
        var result = heard(after: 4, at: 0)
        #expect(result == (false, 16) && tolerance.applied(now: 0) == 16)  // on time
        result = heard(after: 8, at: 10)
        #expect(result == (false, 16) && tolerance.longestSilence(now: 10) == nil)  // one heartbeat lost: not noted
        result = heard(after: 9, at: 15)
        #expect(result == (true, 18))  // late: twice that
        result = heard(after: 14, at: 20)
        #expect(result == (true, 28) && tolerance.applied(now: 20) == 28 && tolerance.late(now: 20))
        result = heard(after: 9, at: 1_000)
        #expect(result == (false, 28))  // shorter: the longest is kept
        result = heard(after: 80, at: 2_000)
        #expect(result == (true, 100) && tolerance.longestSilence(now: 2_000) == 80)  // at most 100
        result = heard(after: 9, at: 3_000)
        #expect(result == (false, 100))
        // 30 s after the 80 ms (and the 14 before it), the 9 ms noted later is the longest: 18.
        var said = tolerance.announce(now: 33_000)
        #expect(said == 18 && tolerance.longestSilence(now: 33_000) == 9 && tolerance.applied(now: 33_000) == 18)
        said = tolerance.announce(now: 33_001)
        // Every silence forgotten: the farm's deadline, once no peer goes by 18.
        #expect(said == 16 && !tolerance.late(now: 33_001))
        #expect(tolerance.applied(now: 33_100) == 18 && tolerance.applied(now: 33_101) == 16)
    }

    @Test func recentMaximumForgetsWhatAgedOutOfItsWindow() {
        var recent = RecentMaximum(windowMilliseconds: 100)
        #expect(recent.maximum(now: 0) == nil)
        recent.note(5, now: 0)
        recent.note(9, now: 10)
        recent.note(3, now: 50)
        recent.note(7, now: 60)
        #expect(recent.maximum(now: 60) == 9 && recent.maximum(now: 110) == 9)
        #expect(recent.maximum(now: 111) == 7 && recent.maximum(now: 160) == 7 && recent.maximum(now: 161) == nil)
        recent.note(1, now: 200)
        #expect(recent.maximum(now: 200) == 1)
    }

    /// At 4 ms × 4, node 1 is heard again after 14 ms of silence, 2 ms short of its death: node 3 gives its peers 28
    /// ms now, says so, and its engine's lease follows the shortest deadline its live peers say they apply. A peer
    /// declared dead and heard again a moment later was late too. A silence past the long deadline (a peer away, or
    /// one that sends only once a second because it does not hear this node) and a stopped peer's say nothing.
    @Test func aPeerHeardLateLengthensTheDeadlineAndTheLease() {
        var membership = Membership(
            me: NodeID(3)!, weight: 100, intervalMilliseconds: 4, deadAfter: 4, seed: Self.seed, now: 0,
            peers: [NodeID(1)!, NodeID(2)!], quorum: .majority)
        _ = membership.receive(Self.beat(1, to: 3), now: 0)
        _ = membership.receive(Self.beat(2, to: 3), now: 0)
        _ = membership.setLocal(state: .active)
        _ = membership.receive(Self.beat(1, sequence: 2, to: 3), now: 4)
        _ = membership.receive(Self.beat(2, sequence: 2, to: 3), now: 4)
        #expect(membership.appliedDeadline(now: 4) == 16 && membership.leaseMilliseconds == 16)
        _ = membership.receive(Self.beat(2, sequence: 3, to: 3), now: 8)
        #expect(
            membership.receive(Self.beat(1, sequence: 3, to: 3), now: 18)
                == [.heardLate(NodeID(1)!, silentMilliseconds: 14, intervalMilliseconds: 4, deadline: 28)])
        let said = membership.announceDeadline(now: 18)
        #expect(membership.appliedDeadline(now: 18) == 28 && said == 28)
        // Node 2 dies: 17 ms of silence no longer kill it; 29 do.
        #expect(membership.tick(now: 25).isEmpty && Self.ids(membership.view) == [1, 2, 3])
        #expect(membership.tick(now: 37).contains(.peerDied(NodeID(2)!, silentMilliseconds: 29)))
        // The lease: the live peer says 16 (the farm's); once it says 28 too, 24 (an interval less).
        #expect(membership.leaseMilliseconds == 16)
        _ = membership.receive(Self.beat(1, sequence: 4, to: 3, deadline: 28), now: 38)
        #expect(membership.leaseMilliseconds == 24)
        // Node 2, dead at 37, heard again at 45: 37 ms of silence, a deadline of 74.
        let back = membership.receive(Self.beat(2, sequence: 4, to: 3), now: 45)
        #expect(back.first == .heardLate(NodeID(2)!, silentMilliseconds: 37, intervalMilliseconds: 4, deadline: 74))
        #expect(membership.appliedDeadline(now: 45) == 74)
        // A silence past the long deadline is not lateness; nor is a stopped peer's.
        var paced = Self.farmOfThree()
        _ = paced.receive(Self.beat(1, to: 3), now: 0)
        let quiet = [
            paced.receive(Self.beat(1, sequence: 2, to: 3), now: 1_000),
            paced.receive(Self.beat(2, .stopped, to: 3), now: 1_000),
            paced.receive(Self.beat(2, .stopped, sequence: 2, to: 3), now: 1_050),
        ].joined()
        #expect(!quiet.contains { if case .heardLate = $0 { true } else { false } })
        #expect(paced.appliedDeadline(now: 1_050) == 30)
    }

    /// Node 3's host drops received frames: a peer silent for 31 ms is not dead yet, at 101 ms it is; node 1, which
    /// says it applies 100 ms too, still votes for node 3.
    @Test func aNodeUnderReceiveLossWaitsTheLongDeadline() {
        var membership = Self.farmOfThree()
        _ = membership.receive(Self.beat(1, to: 3), now: 0)
        _ = membership.receive(Self.beat(2, to: 3), now: 0)
        _ = membership.setLocal(state: .active)
        _ = membership.noteReceiveDrops(10, now: 0)
        let grew = membership.noteReceiveDrops(30, now: 5)
        let said = membership.announceDeadline(now: 5)
        #expect(grew && said == 100)
        _ = membership.receive(Self.beat(1, sequence: 2, to: 3, deadline: 100), now: 10)  // under loss too
        let early = membership.tick(now: 31)
        #expect(early.isEmpty && Self.ids(membership.view) == [1, 2, 3])
        let late = membership.tick(now: 101)
        #expect(late.contains(.peerDied(NodeID(2)!, silentMilliseconds: 101)))
        #expect(membership.fence == nil)  // node 1 still votes
    }

    /// Its peers said they apply 100 ms: node 3, cut off from them, keeps serving past 25 ms of silence (they do
    /// not take its buckets yet), and fences half an interval before they may (at 96), still first.
    @Test func aPeersLongDeadlineMovesTheEarlyChecks() {
        var membership = Self.farmOfThree()
        _ = membership.receive(Self.beat(1, hears: [2], to: 3, deadline: 100), now: 0)
        _ = membership.receive(Self.beat(2, hears: [1], to: 3, deadline: 100), now: 0)
        _ = membership.setLocal(state: .active)
        _ = membership.noteReceiveDrops(0, now: 0)
        let grew = membership.noteReceiveDrops(100, now: 1)  // this host drops too: its own deadline is 100 as well
        let early = membership.tick(now: 40)
        #expect(grew && early.isEmpty && membership.fence == nil)
        #expect(membership.nextExpiry == 96)
        let late = membership.tick(now: 96)
        #expect(late.contains(.fenced(.noQuorum)))
        // A peer that said 100 ms and echoes this node 40 ms old still hears it: no stand-down for that.
        var heard = Self.farmOfThree()
        _ = heard.receive(Self.beat(1, to: 3), now: 0)
        _ = heard.receive(Self.beat(2, to: 3), now: 0)
        _ = heard.setLocal(state: .active)
        _ = heard.receive(Self.beat(1, sequence: 2, age: 40, hears: [2], to: 3, deadline: 100), now: 50)
        _ = heard.receive(Self.beat(2, sequence: 2, age: 40, hears: [1], to: 3, deadline: 100), now: 50)
        #expect(heard.fence == nil && heard.unheardBy(now: 50) == nil)
    }

    @Test func exactlyHalfServesOnlyWithTheLowestID() {
        // Four nodes split two and two: {1, 2} keeps serving, {3, 4} fences.
        func half(_ me: UInt16, _ other: UInt16) -> Membership {
            var membership = Membership(
                me: NodeID(rawValue: me)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: Self.seed, now: 0,
                peers: Set([UInt16(1), 2, 3, 4].filter { $0 != me }.map { NodeID(rawValue: $0)! }), quorum: .majority)
            _ = membership.receive(Self.beat(other), now: 0)
            return membership
        }
        #expect(half(2, 1).hasQuorum)
        #expect(!half(3, 4).hasQuorum)
        // A node that left on purpose does not count: after node 4 left, {1, 2} of three is a majority.
        var three = half(1, 2)
        _ = three.receive(Self.beat(4, .left), now: 1)
        #expect(three.expectedVotes == 3 && three.hasQuorum)
    }

    /// Two nodes, `quorum: none`, a witness; node 2 heard at 0 and 10 (then saying it heard node 1 `echoAge` ms
    /// before), node 1 active.
    static func pairWithWitness(echoAge: UInt32 = 0) -> Membership {
        var membership = Membership(
            me: NodeID(1)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: seed, now: 0,
            peers: [NodeID(2)!], quorum: .none, witness: true)
        _ = membership.receive(beat(2), now: 0)
        #expect(membership.mayActivate(now: 30))  // every peer heard: the witness is not needed
        _ = membership.setLocal(state: .active)
        _ = membership.receive(beat(2, sequence: 2, age: echoAge), now: 10)
        return membership
    }

    @Test func withAWitnessANodeWhosePeerFellSilentServesIfTheWitnessAnsweredAPingSentAfterTheCut() {
        var membership = Self.pairWithWitness()
        #expect(!membership.someoneSilent(now: 25, longerThan: 15) && membership.someoneSilent(now: 26, longerThan: 15))
        // Node 2 was last heard at 10; its next heartbeat was due by 20: a ping sent at 22 crossed the network after
        // whatever silenced node 2.
        membership.witnessAnswered(at: 22)
        #expect(membership.tick(now: 36).isEmpty)
        #expect(membership.tick(now: 41).contains(.peerDied(NodeID(2)!, silentMilliseconds: 31)))
        #expect(membership.fence == nil && Self.ids(membership.view) == [1])
        // A second later without another answer, the node may be the one cut off: it fences.
        #expect(membership.tick(now: 1021).isEmpty)
        #expect(membership.tick(now: 1023).contains(.fenced(.isolated)))
        #expect(membership.view.isEmpty && !membership.hasQuorum)
        membership.witnessAnswered(at: 1030)
        #expect(membership.liftFence(now: 1031) == [.unfenced])
    }

    /// At long intervals the witness is pinged once per interval: its answers may be up to three intervals old
    /// before a survivor of a death takes itself for the one cut off.
    @Test func theWitnessTimeoutScalesWithTheInterval() {
        var membership = Membership(
            me: NodeID(1)!, weight: 100, intervalMilliseconds: 1000, deadAfter: 3, seed: Self.seed, now: 0,
            peers: [NodeID(2)!], quorum: .none, witness: true)
        _ = membership.receive(Self.beat(2), now: 0)
        _ = membership.setLocal(state: .active)
        membership.witnessAnswered(at: 1500)  // after node 2's next heartbeat was due
        #expect(membership.tick(now: 3100).contains(.peerDied(NodeID(2)!, silentMilliseconds: 3100)))
        #expect(membership.fence == nil && membership.witnessTimeoutMilliseconds == 3000)
        #expect(membership.tick(now: 4500).isEmpty)
        #expect(membership.tick(now: 4501).contains(.fenced(.isolated)))
    }

    @Test func withAWitnessThatAnsweredOnlyBeforeTheCutANodeFencesBeforeItsPeerIsDeclaredDead() {
        var membership = Self.pairWithWitness()
        membership.witnessAnswered(at: 15)  // sent before node 2's next heartbeat was due: proves nothing
        // The early check (25 ms of silence, before the peer declares this node dead at 30).
        #expect(membership.tick(now: 35).isEmpty)
        #expect(membership.tick(now: 36).contains(.fenced(.isolated)))
        #expect(membership.fence == .isolated && membership.leader == nil)
    }

    /// The phases of two heartbeat schedules: node 2's last heartbeat before a cut left 5 ms after it last heard
    /// node 1, and reached node 1 at 10; it declares node 1 dead 30 ms after its own hearing, at 35. Node 1 fences by
    /// then, counting from when node 2 heard it (at 31), not only from when it heard node 2 (at 36, after the takeover:
    /// 14 requests answered twice in a CI run).
    @Test func withAWitnessANodeFencesBeforeAPeerThatHeardItEarlierCanDeclareItDead() {
        var membership = Self.pairWithWitness(echoAge: 5)
        #expect(membership.heardMe(membership.peers[NodeID(2)!]!) == 5)
        #expect(membership.nextExpiry == 31)
        #expect(membership.tick(now: 30).isEmpty)
        #expect(membership.tick(now: 31).contains(.fenced(.isolated)))
    }

    @Test func aStalledNodeFencesUntilItHearsItsPeersAgain() {
        var membership = Self.farmOfThree()
        _ = membership.receive(Self.beat(1, to: 3), now: 0)
        _ = membership.receive(Self.beat(2, to: 3), now: 0)
        _ = membership.setLocal(state: .active)
        #expect(membership.fence(.stalled, now: 1500).first == .fenced(.stalled))
        #expect(membership.fence == .stalled && membership.state == .joining)
        #expect(membership.liftFence(now: 1500).isEmpty)  // nobody heard since
        _ = membership.receive(Self.beat(1, sequence: 9, to: 3), now: 1501)
        #expect(membership.liftFence(now: 1501).isEmpty)  // node 2 still unheard
        _ = membership.receive(Self.beat(2, sequence: 9, to: 3), now: 1502)
        #expect(membership.liftFence(now: 1502) == [.unfenced])
    }

    @Test func aLowerIDClaimingTheLeadersRoleKeepsIt() {
        var membership = Self.membership()
        _ = membership.setLocal(state: .active)
        _ = membership.receive(Self.beat(2), now: 0)
        #expect(membership.leader == NodeID(1))
        var claim = Self.beat(2, sequence: 2)
        claim.leader = true
        _ = membership.receive(claim, now: 1)
        #expect(membership.leader == NodeID(1))  // a higher ID's claim changes nothing
        var other = Membership(
            me: NodeID(3)!, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: Self.seed, now: 0)
        _ = other.setLocal(state: .active)
        var unhealthyClaim = Self.beat(2, healthy: false)
        unhealthyClaim.leader = true
        _ = other.receive(unhealthyClaim, now: 1)  // node 2, not in node 3's view, still claims the role
        #expect(Self.ids(other.view) == [3])
        #expect(other.leaderConflict == NodeID(2) && other.leader == NodeID(2))
    }

    // MARK: - Hearing each other

    /// Two nodes, node 2 stops hearing node 1 (node 1 still hears node 2): node 1 learns it from node 2's echoes and
    /// stands down half an interval before node 2 declares it dead, so only node 2 serves; node 1 comes back once node
    /// 2 hears it again, as a joining node would.
    @Test func aNodeThatALivePeerNoLongerHearsStandsDownFirst() {
        var membership = Self.membership()
        _ = membership.receive(Self.beat(2), now: 0)
        #expect(membership.mayActivate(now: 30))
        _ = membership.setLocal(state: .active)
        // Heartbeats lost: not yet; only the silence is noted.
        #expect(
            membership.receive(Self.beat(2, sequence: 2, age: 20), now: 40)
                == [.heardLate(NodeID(2)!, silentMilliseconds: 40, intervalMilliseconds: 10, deadline: 80)])
        let events = membership.receive(Self.beat(2, sequence: 3, age: 25), now: 50)
        #expect(events.contains(.fenced(.unheard)))
        #expect(membership.state == .joining && Self.ids(membership.view) == [2] && membership.leader == nil)
        // Node 2 declared node 1 dead: no echo of it at all. Still fenced.
        _ = membership.receive(Self.beat(2, sequence: 4, hearsMe: false), now: 60)
        #expect(membership.liftFence(now: 60).isEmpty)
        // Node 2 hears node 1 again.
        _ = membership.receive(Self.beat(2, sequence: 5), now: 70)
        #expect(membership.liftFence(now: 70) == [.unfenced])
        #expect(!membership.mayActivate(now: 99) && membership.mayActivate(now: 100))
    }

    /// A peer that does not hear this node stands it down only if it would serve without it: not fenced, and with
    /// majority quorum only if it hears a majority; and only if it is not the one to stand down itself (the higher ID,
    /// told by a third node that this node is alive). A peer deaf to everyone fences itself instead; an echo of another
    /// incarnation of this node (before a restart) is not hearing it.
    @Test func onlyAPeerThatWouldServeWithoutThisNodeStandsItDown() {
        /// Node `me` of three, every node hearing every other.
        func farm(me: UInt16) -> Membership {
            let others: [UInt16] = [1, 2, 3].filter { $0 != me }
            var membership = Membership(
                me: NodeID(rawValue: me)!, incarnation: 1, weight: 100, intervalMilliseconds: 10, deadAfter: 3,
                seed: Self.seed, now: 0, peers: Set(others.map { NodeID(rawValue: $0)! }), quorum: .majority)
            for (node, other) in [(others[0], others[1]), (others[1], others[0])] {
                _ = membership.receive(Self.beat(node, hears: [other], to: me), now: 0)
            }
            _ = membership.setLocal(state: .active)
            _ = membership.receive(Self.beat(others[1], sequence: 2, hears: [others[0]], to: me), now: 30)
            return membership
        }
        /// Node 2's heartbeat: it hears `hears`, and echoes node `me` 26 ms old (past the early window).
        func staleEcho(of me: UInt16, hears: [UInt16], incarnation: UInt64 = 1) -> Heartbeat {
            var beat = Self.beat(2, sequence: 2, hearsMe: false, hears: hears)
            beat.echoes.append(
                Heartbeat.Echo(node: me, live: true, ageMilliseconds: 26, incarnation: incarnation, sequence: 1))
            return beat
        }
        // Node 2 is deaf to everyone: it has no quorum, it will fence itself; node 3 serves on.
        var deaf = farm(me: 3)
        #expect(deaf.receive(Self.beat(2, sequence: 2, age: 27, hears: [1], to: 3), now: 30).isEmpty)
        #expect(deaf.fence == nil && deaf.unheardBy(now: 30) == nil)
        // Node 2 hears node 1 but not node 3: two of three, it serves without node 3, which stands down.
        var oneWay = farm(me: 3)
        #expect(oneWay.receive(staleEcho(of: 3, hears: [1]), now: 30).contains(.fenced(.unheard)))
        // The same, but node 2 is fenced: it serves nothing, so node 3 serves on.
        var fenced = farm(me: 3)
        var beat = staleEcho(of: 3, hears: [1])
        beat.fenced = true
        #expect(fenced.receive(beat, now: 30).isEmpty && fenced.fence == nil)
        // Node 2 echoes another incarnation of node 3: it does not hear this one.
        var restarted = farm(me: 3)
        #expect(restarted.receive(staleEcho(of: 3, hears: [1], incarnation: 99), now: 30).contains(.fenced(.unheard)))
        // Node 2 does not hear node 1 (a lower ID), but node 3 does, and node 2 hears node 3: node 2 learns that node
        // 1 is alive and stands down itself (`deafTo`), so node 1 serves on.
        var higher = farm(me: 1)
        #expect(higher.receive(staleEcho(of: 1, hears: [3]), now: 30).isEmpty && higher.fence == nil)
    }

    /// Node 2 of three; node 3 hears nodes 1 and 2. Node 2 stops hearing node 1 (whether node 1 still hears node 2
    /// or not, node 2 cannot tell): node 3's echoes say node 1 is alive, so node 2, the higher ID, stands down half an
    /// interval before node 1 could declare it dead, and comes back once it hears node 1 again. Had node 1 died,
    /// node 3 would have stopped hearing it when node 2 did: node 2 serves on.
    @Test func ofTwoNodesThatDoNotHearEachOtherTheHigherIDStandsDown() {
        func farm() -> Membership {
            var membership = Membership(
                me: NodeID(2)!, incarnation: 1, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: Self.seed,
                now: 0, peers: [NodeID(1)!, NodeID(3)!], quorum: .majority)
            _ = membership.receive(Self.beat(1, hears: [3], to: 2), now: 0)
            _ = membership.receive(Self.beat(3, hears: [1], to: 2), now: 0)
            _ = membership.setLocal(state: .active)
            return membership
        }
        var deaf = farm()
        _ = deaf.receive(Self.beat(3, sequence: 2, age: 2, hears: [1], to: 2), now: 10)
        _ = deaf.receive(Self.beat(3, sequence: 3, age: 2, hears: [1], to: 2), now: 20)
        #expect(deaf.tick(now: 24).isEmpty)
        #expect(deaf.tick(now: 25).contains(.fenced(.deafPair)))  // node 1 declares node 2 dead at 30 at the earliest
        #expect(deaf.deafTo(now: 25) == NodeID(1) && deaf.state == .joining)
        _ = deaf.receive(Self.beat(3, sequence: 4, age: 2, hears: [1], to: 2), now: 30)
        #expect(deaf.liftFence(now: 40).isEmpty)
        _ = deaf.receive(Self.beat(1, sequence: 5, hears: [3], to: 2), now: 50)  // heard again
        _ = deaf.receive(Self.beat(3, sequence: 5, age: 1, hears: [1], to: 2), now: 50)
        #expect(deaf.liftFence(now: 50) == [.unfenced])
        // Node 1 dies: node 3 last heard it when node 2 did, so its echoes age alike.
        var died = farm()
        for (sequence, at) in [(2, 10), (3, 20), (4, 30)] {
            _ = died.receive(
                Self.beat(3, sequence: UInt64(sequence), age: UInt32(at - 1), hears: [1], to: 2), now: at)
        }
        #expect(died.tick(now: 31).contains(.peerDied(NodeID(1)!, silentMilliseconds: 31)))
        #expect(died.fence == nil && died.deafTo(now: 31) == nil)
    }

    /// A joining node does not go active while a peer hears a node it does not hear: that node is alive, and this
    /// node would take its buckets.
    @Test func aJoiningNodeWaitsWhileAPeerHearsANodeItDoesNot() {
        var membership = Membership(
            me: NodeID(1)!, incarnation: 1, weight: 100, intervalMilliseconds: 10, deadAfter: 3, seed: Self.seed,
            now: 0, peers: [NodeID(2)!, NodeID(3)!], quorum: .majority)
        _ = membership.receive(Self.beat(2, hears: [3]), now: 20)
        #expect(membership.unheardButAlive() == NodeID(3) && !membership.mayActivate(now: 40))
        // Node 3 dies: node 2's echo of it ages past the early window, then goes.
        _ = membership.receive(Self.beat(2, sequence: 2, age: 0, hears: []), now: 50)
        #expect(membership.mayActivate(now: 50))
    }
}
