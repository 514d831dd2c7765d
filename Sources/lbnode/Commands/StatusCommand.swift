import ArgumentParser
import Foundation

/// `lbnode status`: the running node's view of the farm.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the farm as the running node sees it: members, states, buckets, engine counters."
    )

    @OptionGroup var control: ControlOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let data = try control.request("status")
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        guard let status = try ControlOptions.decodeStatus(data) else {
            throw CommandFailure("the node has no status yet (still starting?)")
        }
        print(Self.render(status), terminator: "")
    }

    /// The status as people read it: the node, every configured node, then what is wrong.
    static func render(_ status: NodeStatus) -> String {
        var lines = [
            "farm \(status.farm), node \(status.node) (\(status.address) on \(status.interface)) \(status.state): VIP "
                + "\(status.vip), \(status.delivery) delivery\(status.deliveryAuto ? " (auto)" : ""), leader "
                + "\(status.leader.map { "node \($0)" } ?? "none"), views \(status.agreed ? "agree" : "differ"), table "
                + "\(status.generation)",
            "nodes: \(status.servingNodes) of \(status.configuredNodes) serving; quorum \(status.quorum ? "yes" : "NO") "
                + "(\(status.liveNodes) of \(status.expectedNodes) alive); dead after \(status.deadAfterMilliseconds) ms "
                + "of silence" + (status.receiveLoss ? " (this host drops received frames)" : "")
                + (status.longestPeerSilenceMilliseconds.map { " (peers heard late: up to \($0) ms of silence in 30 s)" }
                    ?? "")
                + (status.fenced.map { ", FENCED: \($0)" } ?? ""),
        ]
        if let stale = status.staleMilliseconds {
            lines.append(
                "THE HEARTBEAT LOOP DID NOT ANSWER: this is its snapshot of \(Self.age(stale)) ago (the host may be "
                    + "starved of CPU or memory; see the log)")
        }
        for member in status.members {
            var line = "  node \(member.id) \(member.address): \(member.state)"
            if member.id == status.node {
                line += " (this node)"
            } else {
                line += member.lastHeardMillisecondsAgo.map { ", last heard \(Self.age($0)) ago" } ?? ""
            }
            if !member.healthy && ["active", "joining", "draining"].contains(member.state) { line += ", UNHEALTHY" }
            line += ", weight \(member.weight), \(member.buckets) buckets\(member.inView ? "" : ", not in the view")"
            if member.away { line += "; away: sent one heartbeat a second" }
            if let neighbour = member.neighbour { line += "; \(neighbour)" }
            if member.heartbeatsNotSent > 0 {
                line +=
                    "; \(member.heartbeatsNotSent) heartbeats not sent\(member.lastSendError.map { " (\($0))" } ?? "")"
            }
            lines.append(line)
        }
        if let open = status.drainConnections { lines.append("  draining: \(open) connections still open") }
        for checker in status.checkersFailing { lines.append("  FAILING \(checker)") }
        if let fault = status.dataPathFault { lines.append("  DATA PATH DOWN: \(fault)") }
        if let reason = status.deliveryReason { lines.append("  delivery auto: \(reason)") }
        if let problem = status.deliveryProblem { lines.append("  DELIVERY CHECK FAILING: \(problem)") }
        if let cheaper = status.deliveryCheaper { lines.append("  delivery check: \(cheaper) delivery would work too") }
        if !status.deliveryDisagreements.isEmpty {
            lines.append("  PEERS USING ANOTHER DELIVERY: \(status.deliveryDisagreements.joined(separator: ", "))")
        }
        if let witness = status.witness {
            lines.append("  witness: \(witness) \(status.witnessReachable == true ? "answers" : "DOES NOT ANSWER")")
        }
        if !status.vipAlsoAnsweredBy.isEmpty {
            lines.append("  THE VIP IS ALSO ANSWERED BY: \(status.vipAlsoAnsweredBy.joined(separator: ", "))")
        }
        if !status.duplicateIDs.isEmpty {
            lines.append("  THIS NODE'S ID IS ALSO USED BY: \(status.duplicateIDs.joined(separator: ", "))")
        }
        if status.leaderConflicts > 0 { lines.append("  leader conflicts: \(status.leaderConflicts)") }
        lines.append(
            "  engine: "
                + status.engine.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        if status.threads.count > 1 {
            let queues =
                status.tapQueues < status.threads.count ? ", sharing the TAP's single queue" : ", a TAP queue each"
            lines.append("  engine threads: \(status.threads.count)\(queues)")
            for (index, thread) in status.threads.enumerated() {
                lines.append(
                    "    thread \(index): received=\(thread.received) delivered=\(thread.delivered) "
                        + "forwarded=\(thread.forwarded) dropped=\(thread.dropped) ring_drops=\(thread.ringDrops) "
                        + "wrong_thread=\(thread.wrongThread) connections=\(thread.flows)")
            }
        }
        lines.append(
            status.prefilterRunning
                ? "  prefilter: kept \(status.prefilterDropped) frames of other nodes' buckets out of the ring, let "
                    + "\(status.prefilterPassed) in"
                    + (status.prefilterEchoDropped > 0
                        ? "; \(status.prefilterEchoDropped) pings beyond the budget" : "")
                    + (status.delivery == "flood" ? "" : " (in \(status.delivery) delivery every bucket passes)")
                : "  prefilter: OFF, every frame for the VIP reaches the engine: \(status.prefilterReason ?? "unknown")"
        )
        lines.append(
            status.kernelDelivery
                ? "  kernel delivery: delivered \(status.deliveredInKernel), forwarded \(status.forwardedInKernel) "
                    + "and dropped \(status.droppedInKernel) frames without the engine (TCP of buckets in steady "
                    + "ownership, UDP\(status.delivery == "relay" ? " but in relay delivery" : ""))"
                : "  kernel delivery: OFF, the engine delivers every frame: "
                    + (status.kernelDeliveryReason ?? status.prefilterReason ?? "unknown"))
        lines.append(
            "  received with offload metadata: "
                + status.offloads.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        lines.append(
            "  TCP connections tracked: \(status.flows) (\(status.flowsAdmitted) confirmed, \(status.flowsEvicted) "
                + "evicted)")
        if !status.heartbeatsRejected.isEmpty {
            lines.append(
                "  heartbeats rejected: "
                    + status.heartbeatsRejected.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    .joined(separator: " "))
        }
        lines.append("  heartbeats dropped by the kernel filter: \(status.heartbeatsDroppedByKernel)")
        let loop = status.loop
        lines.append(
            "  heartbeat loop: \(loop.stateChanges) state changes, the last took "
                + String(
                    format: "%.1f ms, the longest %.1f ms; ", loop.lastStateChangeMilliseconds,
                    loop.longestStateChangeMilliseconds)
                + String(format: "longest turn since start %.1f ms", loop.longestTurnMilliseconds)
                // A state change that long comes back at every view change; one long turn may be the host's moment.
                + (loop.longestStateChangeMilliseconds * 2 > Double(status.deadAfterMilliseconds)
                    ? " (A STATE CHANGE TOOK OVER HALF THE FAILOVER TIME: fewer buckets or longer heartbeats)" : ""))
        if let left = status.handoverSecondsLeft {
            lines.append(
                "  handover window: open, \(left) s left of \(status.handoverSeconds) (connections older than the last "
                    + "move of their bucket stay on the node that had them until it closes)")
        }
        if let change = status.lastChange { lines.append("  last change: \(change)") }
        if let failover = status.lastFailover { lines.append("  last failover: \(failover)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// "35 ms", "4.2 s", "3 min 12 s", "2 h 5 min".
    static func age(_ milliseconds: Int) -> String {
        switch milliseconds {
        case ..<1000: return "\(milliseconds) ms"
        case ..<60_000: return String(format: "%.1f s", Double(milliseconds) / 1000)
        case ..<3_600_000: return "\(milliseconds / 60_000) min \(milliseconds / 1000 % 60) s"
        default: return "\(milliseconds / 3_600_000) h \(milliseconds / 60_000 % 60) min"
        }
    }
}
