import Hashing
import TapEngine
import Testing

@testable import lbnode

/// The node's control logic on a manual clock (ms): node 1 of three, heartbeat every 10 ms, dead after 3.
struct NodeControllerTests {
    /// Node 1 of three on eth0.
    static func config(delivery: String = "flood") throws -> FarmConfig {
        try FarmConfig.parse(
            """
            farm:
              name: web
              vip: 198.18.0.100
              delivery: \(delivery)
              key_file: /k
              heartbeat_interval_ms: 10
              dead_after: 3
            node: { id: 1, interface: eth0, address: 198.18.0.11 }
            peers:
              - { id: 2, address: 198.18.0.12 }
              - { id: 3, address: 198.18.0.13 }
            """, file: "test")
    }

    /// Node 1's controller (with `handoverSeconds`, that window instead of the default).
    static func controller(handoverSeconds: Int? = nil) throws -> NodeController {
        var config = try Self.config()
        if let handoverSeconds { config.farm.handoverSeconds = handoverSeconds }
        return try NodeController(
            config: config, virtualMAC: 0x0200_0000_0064, interfaceMAC: 0x0200_0000_0011,
            incarnation: 7, now: 0)
    }

    static func beat(_ node: UInt16, sequence: UInt64, digest: UInt64 = 0, state: MemberState = .active) -> Heartbeat {
        Heartbeat(
            sender: NodeID(rawValue: node)!, state: state, healthy: true, weight: 100, incarnation: 1,
            sequence: sequence, viewDigest: digest, mac: 0x0200_0000_0010 + UInt64(node),
            echoes: [Heartbeat.Echo(node: 1, live: true, ageMilliseconds: 0, incarnation: 7, sequence: 1)])
    }

    static func sent(_ actions: [NodeAction]) -> [Heartbeat] {
        actions.compactMap { if case .send(let heartbeat, _) = $0 { heartbeat } else { nil } }
    }

    static func states(_ actions: [NodeAction]) -> [EngineState] {
        actions.compactMap { if case .swap(let state) = $0 { state } else { nil } }
    }

    /// Steps every 10 ms from `from` to `to`, with both peers' heartbeats; the actions of the last step.
    @discardableResult
    static func run(_ controller: inout NodeController, from: Int, to: Int, peers: [UInt16] = [2, 3]) -> [NodeAction] {
        var last: [NodeAction] = []
        for now in stride(from: from, through: to, by: 10) {
            let digest = controller.membership.view.digest(seed: controller.membership.seed)
            var inputs = NodeInputs()
            inputs.heartbeats = peers.map { beat($0, sequence: UInt64(now + 1), digest: digest) }
            last = controller.step(now: now, inputs)
        }
        return last
    }

    @Test func itJoinsThenServesAThird() throws {
        var controller = try Self.controller()
        let first = controller.step(now: 0, NodeInputs())
        #expect(Self.sent(first).first?.state == .joining)
        Self.run(&controller, from: 10, to: 60)
        #expect(controller.membership.state == .active)
        #expect(controller.states.shares[NodeID(1)!].map { abs($0 - 4096 / 3) <= 1 } == true)
        #expect(controller.membership.leader == NodeID(1))
    }

    /// Heartbeats report the view the engine runs on every thread, not the one just built: a peer that takes a
    /// bucket from this node waits until it reports the new view (release before acquire), so it must not hear it
    /// while an engine thread still serves the bucket.
    @Test func heartbeatsReportAViewOnlyOnceTheEngineRunsIt() throws {
        var controller = try Self.controller()
        var running = controller.initialState().generation
        var swapped = running
        func step(_ now: Int, peers: [UInt16]) -> [Heartbeat] {
            var inputs = NodeInputs()
            let digest = controller.membership.view.digest(seed: controller.membership.seed)
            inputs.heartbeats = peers.map { Self.beat($0, sequence: UInt64(now + 1), digest: digest) }
            inputs.engineGeneration = running
            let actions = controller.step(now: now, inputs)
            if let state = Self.states(actions).last { swapped = state.generation }
            return Self.sent(actions)
        }
        for now in stride(from: 0, through: 60, by: 10) {
            _ = step(now, peers: [2, 3])
            running = swapped  // an engine that keeps up
        }
        let three = controller.membership.view.digest(seed: controller.membership.seed)
        #expect(controller.membership.view.ids.count == 3)
        // Node 3 falls silent and dies; this node's engine has not taken the new state yet.
        var reported: [UInt64] = []
        for now in stride(from: 70, through: 150, by: 10) { reported += step(now, peers: [2]).map(\.viewDigest) }
        let two = controller.membership.view.digest(seed: controller.membership.seed)
        #expect(controller.membership.view.ids.count == 2 && swapped > running)
        #expect(!reported.isEmpty && reported.allSatisfy { $0 == three })
        running = swapped
        #expect(step(160, peers: [2]).map(\.viewDigest) == [two])
    }

    /// A peer that stops (a restart) hands its buckets over at once: this node takes its share with handover marks
    /// (new connections only: the stopped node's established ones keep waiting for it), without holding them for the
    /// stopped node's agreement, which will not come; the marks stay while it is away.
    @Test func theBucketsOfAStoppedPeerAreTakenAtOnceWithTheirConnectionsLeftToIt() throws {
        var controller = try Self.controller()
        // Past the handover window of the farm's forming: no bucket carries a mark any more.
        Self.run(&controller, from: 0, to: 30_100)
        #expect(controller.membership.view.ids.count == 3)
        let before = controller.states.table
        var now = 30_110
        func step(_ beats: [Heartbeat]) -> [EngineState] {
            var inputs = NodeInputs()
            inputs.heartbeats = beats
            defer { now += 10 }
            return Self.states(controller.step(now: now, inputs))
        }
        func fromTwo() -> Heartbeat {
            Self.beat(
                2, sequence: UInt64(now), digest: controller.membership.view.digest(seed: controller.membership.seed))
        }
        let state = try #require(step([fromTwo(), Self.beat(3, sequence: UInt64(now), state: .stopped)]).last)
        #expect(controller.membership.view.ids.map(\.rawValue) == [1, 2])
        // Node 3's buckets this node takes (about half of its third): marked, none held.
        let taken = (0..<state.table.count).filter {
            before.owner(ofBucket: $0) == NodeID(3) && state.table.owner(ofBucket: $0) == NodeID(1)
        }
        #expect(taken.count > 500, "\(taken.count)")
        #expect(taken.allSatisfy { state.handoverBuckets[$0] && !(state.holdTaking && state.heldBuckets[$0]) })
        // Node 3 silent, node 2 beating: the marks stay for the restart window (no state without them), then node 3
        // is gone and the next state takes its connections too.
        var swapped: [(now: Int, state: EngineState)] = []
        let stoppedAt = now - 10
        while now <= stoppedAt + Membership.restartWindowMilliseconds + 200 {
            let at = now
            swapped += step([fromTwo()]).map { (at, $0) }
        }
        let within = swapped.filter { $0.now <= stoppedAt + Membership.restartWindowMilliseconds }
        #expect(within.allSatisfy { entry in taken.allSatisfy { entry.state.handoverBuckets[$0] } })
        let after = try #require(swapped.last)
        #expect(after.now > stoppedAt + Membership.restartWindowMilliseconds)
        #expect(controller.membership.stoppedPeers.isEmpty && controller.membership.hasDeparted(NodeID(3)!))
        #expect(taken.allSatisfy { !after.state.handoverBuckets[$0] })
    }

    @Test func aStallLongerThanTheFailoverTimeFencesUntilThePeersAreHeard() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        #expect(controller.membership.state == .active)
        // 1.5 s without a step (SIGSTOP), then a step with nothing heard yet: fenced, an empty engine state.
        let woken = controller.step(now: 1560, NodeInputs())
        #expect(controller.membership.fence == .stalled)
        let fencedState = try #require(Self.states(woken).last)
        #expect(!fencedState.isARPLeader && fencedState.table.owner(ofBucket: 0) == nil)
        #expect(Self.sent(woken).last?.fenced == true && Self.sent(woken).last?.leader == false)
        // Both peers heard: the fence lifts, the node rejoins (joining for the deadline), then serves again.
        Self.run(&controller, from: 1570, to: 1570)
        #expect(controller.membership.fence == nil && controller.membership.state == .joining)
        Self.run(&controller, from: 1580, to: 1620)
        #expect(controller.membership.state == .active)
    }

    @Test func aFaultyDataPathTakesTheNodeOutAndBack() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        var inputs = NodeInputs()
        inputs.dataPathFault = "lb0 is gone"
        let actions = controller.step(now: 70, inputs)
        #expect(!controller.membership.healthy && Self.sent(actions).allSatisfy { !$0.healthy })
        #expect(controller.membership.view.ids == [NodeID(2)!, NodeID(3)!])
        Self.run(&controller, from: 80, to: 80)
        #expect(controller.membership.healthy && controller.membership.view.ids.count == 3)
    }

    /// Steps at `now` with both peers heard and `change` applied to the inputs.
    static func step(_ controller: inout NodeController, at now: Int, _ change: (inout NodeInputs) -> Void)
        -> [NodeAction]
    {
        let digest = controller.membership.view.digest(seed: controller.membership.seed)
        var inputs = NodeInputs()
        inputs.heartbeats = [2, 3].map { beat($0, sequence: UInt64(now + 1), digest: digest) }
        change(&inputs)
        return controller.step(now: now, inputs)
    }

    @Test func aDrainEndsOnceNoConnectionIsLeftAndTheNodeStaysListedAsDrained() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        _ = Self.step(&controller, at: 70) { $0.drainSeconds = 60 }
        #expect(controller.membership.state == .draining)
        // A count from a look that began before the peers could see the drain proves nothing: still draining.
        _ = Self.step(&controller, at: 1000) { $0.openConnections = (0, 80) }
        #expect(controller.membership.state == .draining)
        _ = Self.step(&controller, at: 2000) { $0.openConnections = (3, 1000) }
        #expect(controller.membership.state == .draining)
        let actions = Self.step(&controller, at: 3000) { $0.openConnections = (0, 2000) }
        #expect(controller.membership.state == .drained)
        #expect(!actions.contains { if case .leave = $0 { true } else { false } })
        // It serves nothing, keeps no connection, and its heartbeats say drained (the peers keep it listed).
        let state = try #require(Self.states(actions).last)
        #expect(!state.releasedBuckets.contains(true) && !state.isARPLeader)
        #expect(state.table.owner(ofBucket: 0) != NodeID(1))
        let later = Self.step(&controller, at: 3010) { _ in }
        #expect(Self.sent(later).last?.state == .drained)
    }

    @Test func aDrainThatOutlastsItsTimeoutEndsThereAndSaysWhatItCut() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        _ = Self.step(&controller, at: 70) { $0.drainSeconds = 2 }
        _ = Self.step(&controller, at: 1000) { $0.openConnections = (5, 500) }
        #expect(controller.membership.state == .draining)
        let actions = Self.step(&controller, at: 2070) { $0.openConnections = (4, 1500) }
        #expect(controller.membership.state == .drained)
        #expect(
            actions.contains { if case .log(.warning, let line) = $0 { line.contains("4 connections") } else { false } }
        )
    }

    @Test func undrainTakesTheNodeBackAsAJoin() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        _ = Self.step(&controller, at: 70) { $0.drainSeconds = 0 }
        _ = Self.step(&controller, at: 80) { _ in }
        #expect(controller.membership.state == .drained)
        _ = Self.step(&controller, at: 90) { $0.undrain = true }
        #expect(controller.membership.state == .joining)
        Self.run(&controller, from: 100, to: 140)
        #expect(controller.membership.state == .active)
        #expect(controller.membership.view.ids.contains(NodeID(1)!))
    }

    /// The buckets a node takes from live peers at its join keep their handover marks for `farm.handover_seconds`
    /// from the join, then the node runs them as its own.
    @Test func theHandoverWindowLastsTheConfiguredSeconds() throws {
        var controller = try Self.controller(handoverSeconds: 2)
        var marked: [Int: Bool] = [:]
        for now in stride(from: 0, through: 3000, by: 10) {
            let digest = controller.membership.view.digest(seed: controller.membership.seed)
            var inputs = NodeInputs()
            inputs.heartbeats = [2, 3].map { Self.beat($0, sequence: UInt64(now + 1), digest: digest) }
            for state in Self.states(controller.step(now: now, inputs)) {
                marked[now] = state.handoverBuckets.contains(true)
            }
        }
        let opened = try #require(marked.filter(\.value).keys.min())
        let closed = try #require(marked.filter { !$0.value && $0.key > opened }.keys.min())
        #expect((2000...2010).contains(closed - opened), "\(marked.sorted { $0.key < $1.key })")
    }

    /// While a peer drains, the handover window stays open: this node takes only new connections in the buckets it
    /// took, however long the drain lasts.
    @Test func theHandoverWindowStaysOpenWhileAPeerDrains() throws {
        var controller = try Self.controller(handoverSeconds: 1)
        Self.run(&controller, from: 0, to: 60)
        func beats(_ now: Int, draining: Bool) -> NodeInputs {
            var inputs = NodeInputs()
            let digest = controller.membership.view.digest(seed: controller.membership.seed)
            inputs.heartbeats = [
                Self.beat(2, sequence: UInt64(now + 1), digest: digest, state: draining ? .draining : .drained),
                Self.beat(3, sequence: UInt64(now + 1), digest: digest),
            ]
            return inputs
        }
        var taken: EngineState?
        for now in stride(from: 70, through: 5000, by: 10) {
            taken = Self.states(controller.step(now: now, beats(now, draining: true))).last ?? taken
        }
        #expect(taken?.handoverBuckets.contains(true) == true)
        var last: EngineState?
        for now in stride(from: 5010, through: 7000, by: 10) {
            last = Self.states(controller.step(now: now, beats(now, draining: false))).last ?? last
        }
        #expect(last?.handoverBuckets.contains(true) == false)
    }

    /// A peer silent for more than a second (off, cut, never started) gets one heartbeat a second, not one per
    /// interval: its unresolved neighbour entry must not hold datagrams that cost the live peers (HeartbeatSender).
    @Test func aPeerAwayGetsOneHeartbeatASecond() throws {
        var controller = try Self.controller()
        var toThree: [Int] = []
        for now in stride(from: 0, through: 4000, by: 10) {
            var inputs = NodeInputs()
            inputs.heartbeats = [Self.beat(2, sequence: UInt64(now + 1))]
            for case .send(_, let peers) in controller.step(now: now, inputs) where peers.contains(NodeID(3)!) {
                toThree.append(now)
            }
        }
        // Every interval for its first second of silence, then one a second.
        #expect(toThree.filter { $0 <= 1000 }.count >= 99)
        #expect(toThree.filter { $0 > 1000 } == [1010, 2010, 3010])
        #expect(controller.awayPeers == [NodeID(3)!])
        // Heard again: every interval at once.
        var inputs = NodeInputs()
        inputs.heartbeats = [Self.beat(2, sequence: 5000), Self.beat(3, sequence: 1)]
        _ = controller.step(now: 4010, inputs)
        let next = controller.step(now: 4020, NodeInputs())
        #expect(next.contains { if case .send(_, let peers) = $0 { peers.contains(NodeID(3)!) } else { false } })
        #expect(controller.awayPeers.isEmpty)
    }

    /// A node whose link comes back heartbeats every peer at once, away or not: paced, a peer it could not reach for
    /// a second would hear it only a second later, and the two would build views without each other meanwhile.
    @Test func aNodeBackOnTheNetworkHeartbeatsEveryPeerAtOnce() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 100)
        var down = NodeInputs()
        down.dataPathFault = "interface eth0 has no carrier"
        for now in stride(from: 110, through: 2000, by: 10) { _ = controller.step(now: now, down) }
        #expect(controller.awayPeers == [NodeID(2)!, NodeID(3)!])
        let back = controller.step(now: 2010, NodeInputs())
        #expect(back.contains { if case .refreshNeighbours = $0 { true } else { false } })
        for now in stride(from: 2020, through: 2100, by: 10) {
            let actions = controller.step(now: now, NodeInputs())
            #expect(actions.contains { if case .send(_, let peers) = $0 { peers.count == 2 } else { false } }, "\(now)")
        }
    }

    /// Flood mode, release before acquire: buckets taken from live peers are held until the peers report this view.
    @Test func bucketsTakenFromLivePeersWaitForTheirAgreement() throws {
        var controller = try Self.controller()
        var actions: [NodeAction] = []
        for now in stride(from: 0, through: 60, by: 10) {
            var inputs = NodeInputs()
            inputs.heartbeats = [2, 3].map { Self.beat($0, sequence: UInt64(now + 1), digest: 1) }
            actions += controller.step(now: now, inputs)
        }
        #expect(controller.membership.state == .active)
        let held = try #require(Self.states(actions).last)
        #expect(held.holdTaking && held.heldBuckets.contains(true))
        let agreed = Self.run(&controller, from: 70, to: 70)
        #expect(Self.states(agreed).last?.holdTaking == false)
    }

    /// A peer that says it is fenced serves nothing: its buckets are taken without waiting for its view, which may
    /// never agree (it stood down because it does not hear a node).
    @Test func theBucketsOfAFencedPeerAreTakenWithoutItsAgreement() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        #expect(controller.membership.state == .active)
        func step(_ now: Int) -> [NodeAction] {
            var fenced = Self.beat(2, sequence: UInt64(now), digest: 12345, state: .joining)
            fenced.fenced = true
            let digest = controller.membership.view.digest(seed: controller.membership.seed)
            var inputs = NodeInputs()
            inputs.heartbeats = [fenced, Self.beat(3, sequence: UInt64(now), digest: digest)]
            return controller.step(now: now, inputs)
        }
        let held = try #require(Self.states(step(70)).last)  // node 3 has not said it runs the new view yet
        #expect(held.holdTaking)
        let taken = try #require(Self.states(step(80)).last)  // it has; node 2's view does not count
        #expect(!taken.holdTaking && !taken.heldBuckets.contains(true))
        #expect(controller.states.shares[NodeID(2)!] == nil)
    }

    /// A peer whose heartbeats name another delivery mode is reported (its frames would never meet this node's).
    @Test func aPeerUsingAnotherDeliveryIsReported() throws {
        var controller = try Self.controller()
        #expect(Self.sent(controller.step(now: 0, NodeInputs())).first?.delivery == .flood)
        var inputs = NodeInputs()
        var other = Self.beat(2, sequence: 1)
        other.delivery = .relay
        inputs.heartbeats = [other, Self.beat(3, sequence: 1)]
        let actions = controller.step(now: 10, inputs)
        #expect(controller.deliveryDisagreements == [NodeID(2)!: .relay])
        #expect(
            actions.contains {
                if case .log(.warning, let line) = $0 { line.contains("node 2 uses relay delivery") } else { false }
            })
        Self.run(&controller, from: 20, to: 100, peers: [3])  // node 2 falls silent and dies
        #expect(controller.deliveryDisagreements.isEmpty)
    }

    /// When a peer's silence reaches the early window, this node sends a heartbeat at once (between its regular ones)
    /// whose echo says so: the peer stands down before this node declares it dead and takes its buckets.
    @Test func aPeerSilentForTheEarlyWindowIsToldAtOnce() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        #expect(controller.membership.state == .active)
        Self.run(&controller, from: 70, to: 80, peers: [3])  // node 2, last heard at 60, falls silent
        #expect(controller.nextBeatDue == 85)
        var inputs = NodeInputs()
        inputs.heartbeats = [Self.beat(3, sequence: 86)]
        let warning = Self.sent(controller.step(now: 85, inputs))
        #expect(warning.count == 1)
        #expect(warning.first?.echo(of: NodeID(2)!)?.ageMilliseconds == 25)
        #expect(controller.membership.peers[NodeID(2)!] != nil)  // not dead yet
        #expect(controller.nextBeatDue == 90)  // the regular pace goes on
    }

    /// The host drops received frames (pings beyond the budget, here): the node says so once, with what grew, and its
    /// heartbeats announce 100 ms; a peer silent for 60 ms is not dead. Thirty seconds later it is back to 30 ms.
    @Test func receiveDropsLengthenTheDeadlineAndTheHeartbeatsSaySo() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        _ = Self.step(&controller, at: 70) { $0.receiveDrops = ReceiveDrops() }
        let actions = Self.step(&controller, at: 80) { $0.receiveDrops = ReceiveDrops(pings: 1894) }
        let logs = actions.compactMap { if case .log(_, let line) = $0 { line } else { nil } }
        #expect(logs.contains { $0.hasPrefix("this host drops received frames (pings beyond the budget +1894)") })
        let silent = Self.run(&controller, from: 90, to: 140, peers: [3])  // node 2 falls silent after 80
        #expect(Self.sent(silent).last?.deadlineMilliseconds == 100)
        #expect(controller.membership.peers[NodeID(2)!] != nil && controller.membership.fence == nil)
        Self.run(&controller, from: 150, to: 30_080, peers: [3])
        let later = Self.step(&controller, at: 30_090) { $0.receiveDrops = ReceiveDrops(pings: 1894) }
        let notices = later.compactMap { if case .log(_, let line) = $0 { line } else { nil } }
        #expect(notices.contains("no received frame dropped for 30 s: back to the 30-ms deadline"), "\(notices)")
        #expect(controller.membership.appliedDeadline(now: 30_190) == 30)
    }

    /// Node 2 is heard again after 25 ms of silence, 5 ms short of its death (its heartbeats late on a busy host): the
    /// node says so (not as a change of the farm), its heartbeats announce twice that, 50 ms, and a silence of 35 ms no
    /// longer kills node 2. Thirty seconds after the last late heartbeat, the node is back to the farm's 30 ms and says
    /// so.
    @Test func aPeerHeardLateLengthensTheDeadlineAndTheHeartbeatsSaySo() throws {
        func lines(_ actions: [NodeAction]) -> [String] {
            actions.compactMap { if case .log(_, let line) = $0 { line } else { nil } }
        }
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        Self.run(&controller, from: 70, to: 80, peers: [3])  // node 2, last heard at 60, is late
        let late = lines(Self.step(&controller, at: 85) { _ in })
        #expect(
            late.contains {
                $0.hasPrefix("node 2 heard again after 25 ms of silence (heartbeats every 10 ms; ")
                    && $0.contains("peers now get 50 ms of silence before they are declared dead")
            }, "\(late)")
        // Not a change of the farm: the status's last change stays what it was.
        #expect(try #require(controller.lastChange).event.hasPrefix("view "))
        let silent = Self.run(&controller, from: 90, to: 120, peers: [3])  // node 2 silent again, 35 ms at 120
        #expect(Self.sent(silent).last?.deadlineMilliseconds == 50)
        #expect(controller.membership.peers[NodeID(2)!] != nil && controller.membership.fence == nil)
        Self.run(&controller, from: 130, to: 30_130)  // node 2 back after 45 ms (the deadline is 90 ms now)
        #expect(controller.membership.appliedDeadline(now: 30_130) == 90)
        let back = lines(Self.run(&controller, from: 30_140, to: 30_140))
        #expect(back.contains("no peer heard late for 30 s: back to the 30-ms deadline"), "\(back)")
        #expect(controller.membership.appliedDeadline(now: 30_240) == 30)
    }

    /// A reload applies the weight (and rules, checkers) and names the keys that wait for a restart, which keep their
    /// running values.
    @Test func aReloadAppliesWhatItCanAndNamesWhatWaitsForARestart() throws {
        var controller = try Self.controller()
        Self.run(&controller, from: 0, to: 60)
        var next = try FarmConfig.parse(
            """
            farm:
             { name: web, vip: 198.18.0.101, delivery: flood, key_file: /k, heartbeat_interval_ms: 10, dead_after: 3 }
            node: { id: 1, interface: eth0, address: 198.18.0.11, weight: 50 }
            peers:
              - { id: 2, address: 198.18.0.12 }
              - { id: 3, address: 198.18.0.13 }
              - { id: 4, address: 198.18.0.14 }
            """, file: "test")
        next.node.prefilter = false
        var inputs = NodeInputs()
        inputs.reload = next
        let logs = controller.step(now: 70, inputs).compactMap { if case .log(_, let line) = $0 { line } else { nil } }
        #expect(
            logs.contains(
                "reload: farm.vip, node.prefilter, peers changed, which take effect only when lbnode starts: running "
                    + "with the old values until `systemctl restart`"), "\(logs)")
        #expect(controller.config.node.weight == 50 && controller.membership.weight == 50)
        #expect(controller.config.farm.vip == (try Self.config()).farm.vip && controller.config.peers.count == 2)
        #expect(controller.config.node.prefilter)
    }
}
