import Foundation
import Hashing
import RouteSetup
import TapEngine

extension NodeLoop {
    /// The open connections a client can still reach while this node drains: it owns no bucket, so a segment reaches
    /// the application only through a connection in the engine's flow table, and only one the kernel still has is
    /// open. Neither list alone will do: connections whose buckets moved while lbnode was down (a crash, a restart)
    /// stay in the kernel with nobody sending to them, and a flow whose end the engine did not see stays in its table
    /// until it idles out. The smaller count bounds both: when either is 0, nothing can be cut.
    func reachableConnections(kernel: Int) -> Int {
        guard let engine else { return kernel }
        return min(kernel, engine.flowCount)
    }

    /// Publishes a status snapshot when a reader (`lbnode status`, `/metrics`) asked for one, or a second after the
    /// last: building it reads every counter, too much for each of the loop's hundreds of turns a second.
    func publishStatus(now: Int, at instant: ContinuousClock.Instant) {
        guard let asked = daemon.requests.status.due(now: instant) else { return }
        daemon.requests.status.publish(statusSnapshot(now: now), answering: asked)
    }

    /// What `lbnode status` and `/metrics` show, as of `now`.
    private func statusSnapshot(now: Int) -> NodeStatus {
        let membership = controller.membership
        let states = controller.states
        let shares = states.shares
        let away = controller.awayPeers
        let neighbourStates = neighbours.latest?.value ?? [:]
        var members = config.peers.map { peer in
            let id = peer.id
            let live = membership.peers[id]
            let known = live ?? membership.lastKnown[id]
            let counts = sender.counts[id] ?? HeartbeatSender.PeerCounts()
            let state =
                live.map(\.state.description)
                ?? (membership.hasDeparted(id) ? "left" : known == nil ? "never heard" : "dead")
            let neighbour = neighbourStates[peer.address.host].flatMap { state -> String? in
                state == .resolved ? nil : "no \(peer.address.isIPv4 ? "ARP" : "neighbour") answer (\(state))"
            }
            return NodeStatus.Member(
                id: id.rawValue, address: peer.address.address, state: state, healthy: live?.healthy ?? false,
                weight: known?.weight ?? 0, buckets: shares[id] ?? 0, inView: membership.view.ids.contains(id),
                lastHeardMillisecondsAgo: known.map { now - $0.lastHeard },
                heartbeatsSent: counts.sent, heartbeatsNotSent: counts.queueFull + counts.failed,
                lastSendError: counts.lastError, away: away.contains(id), neighbour: neighbour)
        }
        members.append(
            NodeStatus.Member(
                id: config.node.id.rawValue, address: config.node.address.address,
                state: membership.state.description, healthy: membership.healthy, weight: membership.weight,
                buckets: shares[config.node.id] ?? 0, inView: membership.view.ids.contains(config.node.id)))
        let counters = engine?.counters ?? EngineCounters()
        var engineFigures: [String: UInt64] = [
            "received": counters.received, "delivered": counters.delivered, "forwarded": counters.forwarded,
            "answered": counters.answered, "transmitted": counters.transmitted, "batches": counters.batches,
            "ring_drops": counters.ringDrops, "wrong_thread": counters.wrongThread,
        ]
        for reason in DropReason.allCases where counters.dropped(reason) > 0 {
            engineFigures["dropped_\(reason)"] = counters.dropped(reason)
        }
        /// An event at `at` (ms) in wall-clock time, for people reading the status.
        func stamped(_ event: (at: Int, event: String)?) -> String? {
            event.map {
                "\(Date().addingTimeInterval(Double($0.at - now) / 1000).formatted(LineLogHandler.timestamp)) \($0.event)"
            }
        }
        var snapshot = NodeStatus(
            farm: config.farm.name, node: config.node.id.rawValue, state: membership.state.description,
            leader: membership.leader?.rawValue, delivery: config.farm.delivery.rawValue, agreed: membership.agreed,
            generation: states.generation, members: members.sorted { $0.id < $1.id }, flows: engine?.flowCount ?? 0,
            engine: engineFigures,
            offloads: Dictionary(uniqueKeysWithValues: OffloadKind.allCases.map { ("\($0)", counters.received($0)) }),
            heartbeatsRejected: Dictionary(uniqueKeysWithValues: gate.rejected.map { ($0.key.rawValue, $0.value) }),
            lastChange: stamped(controller.lastChange), lastFailover: stamped(controller.lastFailover))
        snapshot.heartbeatsDroppedByKernel = socket.kernelDrops
        snapshot.fenced = membership.fence?.description
        snapshot.liveNodes = membership.liveVotes
        snapshot.expectedNodes = membership.expectedVotes
        snapshot.quorum = membership.hasQuorum
        snapshot.deadAfterMilliseconds = membership.appliedDeadline(now: now)
        snapshot.receiveLoss = membership.tolerance.underLoss(now: now)
        snapshot.longestPeerSilenceMilliseconds = membership.tolerance.longestSilence(now: now)
        snapshot.configuredNodes = config.peers.count + 1
        snapshot.servingNodes = membership.view.members.count
        snapshot.vip = config.farm.vip.address
        snapshot.interface = config.node.interface
        snapshot.address = config.node.address.address
        snapshot.checkersFailing = checkers.failing
        if membership.state == .draining, let open = vipConnections.latest?.value {
            snapshot.drainConnections = reachableConnections(kernel: open)
        }
        // The window's timer also runs after a failover; the status speaks of it only while a bucket carries a mark.
        let marked = engineState.handoverBuckets.contains(true) || engineState.releasedBuckets.contains(true)
        snapshot.handoverSecondsLeft = controller.handoverUntil.flatMap { marked ? max(0, $0 - now + 999) / 1000 : nil }
        snapshot.handoverSeconds = config.farm.handoverSeconds
        snapshot.witness = config.farm.witness?.description
        snapshot.witnessReachable = membership.witnessAnsweredAt.map {
            now - $0 <= membership.witnessTimeoutMilliseconds
        }
        snapshot.dataPathFault = controller.dataPathFault
        snapshot.leaderConflicts = controller.leaderConflicts
        snapshot.deliveryAuto = config.farm.deliverySetting == .auto
        snapshot.deliveryReason = deliveryReason
        snapshot.deliveryProblem = deliveryWatch.problem
        snapshot.deliveryCheaper = deliveryWatch.cheaper?.rawValue
        snapshot.deliveryDisagreements = controller.deliveryDisagreements.sorted { $0.key < $1.key }
            .map { "node \($0.key): \($0.value)" }
        snapshot.duplicateIDs = gate.duplicates.keys.map(\.description).sorted()
        snapshot.vipAlsoAnsweredBy = vipWatch.holders.sorted().map(VIPWatch.text)
        let flowCounters = engine?.flowCounters ?? FlowTableCounters()
        snapshot.flowsAdmitted = flowCounters.confirmed
        snapshot.flowsEvicted = flowCounters.evicted
        snapshot.threads = (engine?.threadStatus ?? []).map { thread in
            NodeStatus.EngineThread(
                received: thread.counters.received, delivered: thread.counters.delivered,
                forwarded: thread.counters.forwarded, dropped: thread.counters.totalDropped,
                wrongThread: thread.counters.wrongThread, ringDrops: thread.counters.ringDrops,
                flows: thread.flowCount)
        }
        snapshot.tapQueues = engine?.tapQueues ?? 1
        snapshot.loop = turnCost.figures
        if let prefilter = engine?.prefilterStatus {
            snapshot.prefilterRunning = prefilter.running
            snapshot.prefilterReason = prefilter.reason
            snapshot.prefilterPassed = prefilter.passed
            snapshot.prefilterDropped = prefilter.dropped
            snapshot.prefilterEchoDropped = prefilter.echoDropped
            snapshot.kernelDelivery = prefilter.kernelDelivery
            snapshot.kernelDeliveryReason = prefilter.kernelDeliveryReason
            snapshot.deliveredInKernel = prefilter.deliveredInKernel
            snapshot.forwardedInKernel = prefilter.forwardedInKernel
            snapshot.droppedInKernel = prefilter.droppedInKernel
        }
        return snapshot
    }
}
