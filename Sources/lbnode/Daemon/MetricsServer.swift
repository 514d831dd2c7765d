import Foundation
import Hashing
import RouteSetup
import TapEngine

/// Serves `GET /metrics` in the Prometheus text format on `metrics_address` (loopback by default), from the status
/// snapshot the heartbeat loop takes for each scrape (`StatusExchange`): the engine's counters, the members, the view,
/// rejected heartbeats.
final class MetricsServer: @unchecked Sendable {
    private let server: StreamServer

    /// Listens on `address` ("127.0.0.1:9946", "[::1]:9946").
    init(address: String, snapshot: @escaping @Sendable () -> NodeStatus?) throws {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]),
            let host = IPPrefix(String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")))
        else { throw ControlError("metrics_address '\(address)' must be address:port") }
        let end = Array("\r\n\r\n".utf8)
        do {
            server = try StreamServer(
                address: IPAddress(bytes: host.bytes)!, port: port,
                complete: { request in request.count >= 4 && Array(request.suffix(4)) == end },
                handler: { request, _ in
                    guard String(decoding: request, as: UTF8.self).hasPrefix("GET /metrics ") else {
                        return Array("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
                    }
                    let body = Self.render(snapshot())
                    return Array(
                        ("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: "
                            + "\(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)").utf8)
                })
        } catch {
            throw ControlError("metrics on \(address): \(error) (change metrics_address?)")
        }
    }

    deinit {
        server.stop()
    }

    /// The Prometheus text format of a status snapshot.
    static func render(_ status: NodeStatus?) -> String {
        guard let status else { return "# vipfarm: starting\n" }
        let labels = "farm=\"\(status.farm)\",node=\"\(status.node)\""
        var lines = [
            "# HELP vipfarm_view_generation Engine state generation (one per view change).",
            "# TYPE vipfarm_view_generation gauge",
            "vipfarm_view_generation{\(labels)} \(status.generation)",
            "# TYPE vipfarm_flows gauge",
            "vipfarm_flows{\(labels)} \(status.flows)",
            "# HELP vipfarm_status_stale_milliseconds Age of these figures when the heartbeat loop did not answer the "
                + "scrape in time (it is stalled); 0 when they are fresh.",
            "# TYPE vipfarm_status_stale_milliseconds gauge",
            "vipfarm_status_stale_milliseconds{\(labels)} \(status.staleMilliseconds ?? 0)",
            "# HELP vipfarm_views_agree Whether every configured node (but those that left) is alive with this view.",
            "# TYPE vipfarm_views_agree gauge",
            "vipfarm_views_agree{\(labels)} \(status.agreed ? 1 : 0)",
            "# HELP vipfarm_quorum Whether this node's side of the farm may serve.",
            "# TYPE vipfarm_quorum gauge",
            "vipfarm_quorum{\(labels)} \(status.quorum ? 1 : 0)",
            "# HELP vipfarm_dead_after_milliseconds Silence after which this node declares a peer dead (longer while "
                + "its host drops received frames or its peers are heard late).",
            "# TYPE vipfarm_dead_after_milliseconds gauge",
            "vipfarm_dead_after_milliseconds{\(labels)} \(status.deadAfterMilliseconds)",
            "# HELP vipfarm_receive_loss Whether this host dropped received frames within 30 s (the long deadline).",
            "# TYPE vipfarm_receive_loss gauge",
            "vipfarm_receive_loss{\(labels)} \(status.receiveLoss ? 1 : 0)",
            "# HELP vipfarm_peer_silence_longest_milliseconds The longest silence of a peer heard late within 30 s "
                + "(over two intervals; twice that is the deadline while peers are heard late), or 0.",
            "# TYPE vipfarm_peer_silence_longest_milliseconds gauge",
            "vipfarm_peer_silence_longest_milliseconds{\(labels)} \(status.longestPeerSilenceMilliseconds ?? 0)",
            "# HELP vipfarm_handover_seconds_left Seconds until the open handover window closes (the connections that "
                + "predate a move stay on their node until then), or 0.",
            "# TYPE vipfarm_handover_seconds_left gauge",
            "vipfarm_handover_seconds_left{\(labels)} \(status.handoverSecondsLeft ?? 0)",
            "# TYPE vipfarm_nodes_live gauge",
            "vipfarm_nodes_live{\(labels)} \(status.liveNodes)",
            "# TYPE vipfarm_nodes_expected gauge",
            "vipfarm_nodes_expected{\(labels)} \(status.expectedNodes)",
            "# HELP vipfarm_nodes_configured Nodes in the configuration, this one included (drained, left, dead too).",
            "# TYPE vipfarm_nodes_configured gauge",
            "vipfarm_nodes_configured{\(labels)} \(status.configuredNodes)",
            "# HELP vipfarm_nodes_serving Nodes in this node's view: they serve buckets.",
            "# TYPE vipfarm_nodes_serving gauge",
            "vipfarm_nodes_serving{\(labels)} \(status.servingNodes)",
            "# HELP vipfarm_checkers_failing Checkers of this node that do not pass.",
            "# TYPE vipfarm_checkers_failing gauge",
            "vipfarm_checkers_failing{\(labels)} \(status.checkersFailing.count)",
            "# HELP vipfarm_witness_reachable Whether the witness answers pings (1 without a witness).",
            "# TYPE vipfarm_witness_reachable gauge",
            "vipfarm_witness_reachable{\(labels)} \(status.witnessReachable == false ? 0 : 1)",
            "# HELP vipfarm_vip_conflicts Hosts other than the farm's nodes that answered for the VIP at the last look.",
            "# TYPE vipfarm_vip_conflicts gauge",
            "vipfarm_vip_conflicts{\(labels)} \(status.vipAlsoAnsweredBy.count)",
            "# HELP vipfarm_fenced Whether this node serves nothing until it hears the current view.",
            "# TYPE vipfarm_fenced gauge",
            "vipfarm_fenced{\(labels)} \(status.fenced == nil ? 0 : 1)",
            "# HELP vipfarm_data_path_up Whether the engine can deliver (TAP, interface, engine thread, setup).",
            "# TYPE vipfarm_data_path_up gauge",
            "vipfarm_data_path_up{\(labels)} \(status.dataPathFault == nil ? 1 : 0)",
            "# HELP vipfarm_delivery The delivery mode in use (auto: picked by the probe at start).",
            "# TYPE vipfarm_delivery gauge",
            "vipfarm_delivery{\(labels),mode=\"\(status.delivery)\",auto=\"\(status.deliveryAuto)\"} 1",
            "# HELP vipfarm_delivery_working Whether the peers' probe frames still arrive as the delivery mode needs.",
            "# TYPE vipfarm_delivery_working gauge",
            "vipfarm_delivery_working{\(labels)} \(status.deliveryProblem == nil ? 1 : 0)",
            "# HELP vipfarm_delivery_disagreements Live peers whose heartbeats name another delivery mode.",
            "# TYPE vipfarm_delivery_disagreements gauge",
            "vipfarm_delivery_disagreements{\(labels)} \(status.deliveryDisagreements.count)",
            "# TYPE vipfarm_leader_conflicts_total counter",
            "vipfarm_leader_conflicts_total{\(labels)} \(status.leaderConflicts)",
            "# HELP vipfarm_duplicate_ids Addresses that sent authentic heartbeats with this node's ID.",
            "# TYPE vipfarm_duplicate_ids gauge",
            "vipfarm_duplicate_ids{\(labels)} \(status.duplicateIDs.count)",
            "# HELP vipfarm_flows_total Connections confirmed into and evicted from the flow table.",
            "# TYPE vipfarm_flows_total counter",
            "vipfarm_flows_total{\(labels),event=\"admitted\"} \(status.flowsAdmitted)",
            "vipfarm_flows_total{\(labels),event=\"evicted\"} \(status.flowsEvicted)",
            "# HELP vipfarm_heartbeats_dropped_by_kernel_total Datagrams the heartbeat socket's filter or full queue dropped.",
            "# TYPE vipfarm_heartbeats_dropped_by_kernel_total counter",
            "vipfarm_heartbeats_dropped_by_kernel_total{\(labels)} \(status.heartbeatsDroppedByKernel)",
            "# HELP vipfarm_state_changes_total Turns of the heartbeat loop that swapped the engine's state.",
            "# TYPE vipfarm_state_changes_total counter",
            "vipfarm_state_changes_total{\(labels)} \(status.loop.stateChanges)",
            "# HELP vipfarm_state_change_seconds What a state change (build and swap) took on the heartbeat loop.",
            "# TYPE vipfarm_state_change_seconds gauge",
            "vipfarm_state_change_seconds{\(labels),which=\"last\"} \(status.loop.lastStateChangeMilliseconds / 1000)",
            "vipfarm_state_change_seconds{\(labels),which=\"longest\"} "
                + "\(status.loop.longestStateChangeMilliseconds / 1000)",
            "# HELP vipfarm_loop_turn_longest_seconds The heartbeat loop's longest turn (no heartbeat leaves during one).",
            "# TYPE vipfarm_loop_turn_longest_seconds gauge",
            "vipfarm_loop_turn_longest_seconds{\(labels)} \(status.loop.longestTurnMilliseconds / 1000)",
            "# HELP vipfarm_member_in_view Whether a member is in this node's view.",
            "# TYPE vipfarm_member_in_view gauge",
        ]
        for member in status.members {
            lines.append(
                "vipfarm_member_in_view{\(labels),member=\"\(member.id)\",state=\"\(member.state)\"} "
                    + "\(member.inView ? 1 : 0)")
        }
        lines.append("# TYPE vipfarm_member_buckets gauge")
        for member in status.members {
            lines.append("vipfarm_member_buckets{\(labels),member=\"\(member.id)\"} \(member.buckets)")
        }
        lines.append(
            "# HELP vipfarm_member_last_heard_seconds Seconds since a peer's last heartbeat (-1: never heard).")
        lines.append("# TYPE vipfarm_member_last_heard_seconds gauge")
        for member in status.members where member.id != status.node {
            let seconds = member.lastHeardMillisecondsAgo.map { String(format: "%.3f", Double($0) / 1000) } ?? "-1"
            lines.append("vipfarm_member_last_heard_seconds{\(labels),member=\"\(member.id)\"} \(seconds)")
        }
        lines.append("# HELP vipfarm_member_heartbeats_not_sent_total Heartbeats to a peer given up or refused.")
        lines.append("# TYPE vipfarm_member_heartbeats_not_sent_total counter")
        for member in status.members where member.id != status.node {
            lines.append(
                "vipfarm_member_heartbeats_not_sent_total{\(labels),member=\"\(member.id)\"} \(member.heartbeatsNotSent)"
            )
        }
        if let open = status.drainConnections {
            lines.append("# HELP vipfarm_drain_connections Connections a draining node still serves.")
            lines.append("# TYPE vipfarm_drain_connections gauge")
            lines.append("vipfarm_drain_connections{\(labels)} \(open)")
        }
        lines.append("# HELP vipfarm_engine_total Engine counters (frames).")
        lines.append("# TYPE vipfarm_engine_total counter")
        for (name, value) in status.engine.sorted(by: { $0.key < $1.key }) {
            lines.append("vipfarm_engine_total{\(labels),counter=\"\(name)\"} \(value)")
        }
        lines.append("# HELP vipfarm_engine_threads Engine threads, each with a ring and a flow table of its own.")
        lines.append("# TYPE vipfarm_engine_threads gauge")
        lines.append("vipfarm_engine_threads{\(labels)} \(status.threads.count)")
        lines.append("# HELP vipfarm_engine_thread_frames_total Engine counters per thread (frames).")
        lines.append("# TYPE vipfarm_engine_thread_frames_total counter")
        for (index, thread) in status.threads.enumerated() {
            let figures: KeyValuePairs<String, UInt64> = [
                "delivered": thread.delivered, "dropped": thread.dropped, "forwarded": thread.forwarded,
                "received": thread.received, "ring_drops": thread.ringDrops, "wrong_thread": thread.wrongThread,
            ]
            for (name, value) in figures {
                lines.append(
                    "vipfarm_engine_thread_frames_total{\(labels),thread=\"\(index)\",counter=\"\(name)\"} \(value)")
            }
        }
        lines.append("# HELP vipfarm_offload_frames_total Received frames by the offload metadata they carried.")
        lines.append("# TYPE vipfarm_offload_frames_total counter")
        for (kind, value) in status.offloads.sorted(by: { $0.key < $1.key }) {
            lines.append("vipfarm_offload_frames_total{\(labels),kind=\"\(kind)\"} \(value)")
        }
        lines.append("# HELP vipfarm_prefilter_running Whether the bucket prefilter keeps other nodes' frames out.")
        lines.append("# TYPE vipfarm_prefilter_running gauge")
        lines.append("vipfarm_prefilter_running{\(labels)} \(status.prefilterRunning ? 1 : 0)")
        lines.append("# HELP vipfarm_prefilter_frames_total Frames the bucket prefilter judged by their bucket.")
        lines.append("# TYPE vipfarm_prefilter_frames_total counter")
        lines.append("vipfarm_prefilter_frames_total{\(labels),verdict=\"dropped\"} \(status.prefilterDropped)")
        lines.append("vipfarm_prefilter_frames_total{\(labels),verdict=\"passed\"} \(status.prefilterPassed)")
        lines.append(
            "vipfarm_prefilter_frames_total{\(labels),verdict=\"echo_rate_limited\"} \(status.prefilterEchoDropped)")
        lines.append(
            "# HELP vipfarm_kernel_delivery_running Whether the kernel delivers steady buckets' TCP frames and UDP itself.")
        lines.append("# TYPE vipfarm_kernel_delivery_running gauge")
        lines.append("vipfarm_kernel_delivery_running{\(labels)} \(status.kernelDelivery ? 1 : 0)")
        lines.append("# HELP vipfarm_kernel_delivery_frames_total Frames the kernel delivered, forwarded or dropped itself.")
        lines.append("# TYPE vipfarm_kernel_delivery_frames_total counter")
        lines.append("vipfarm_kernel_delivery_frames_total{\(labels),action=\"delivered\"} \(status.deliveredInKernel)")
        lines.append("vipfarm_kernel_delivery_frames_total{\(labels),action=\"forwarded\"} \(status.forwardedInKernel)")
        lines.append("vipfarm_kernel_delivery_frames_total{\(labels),action=\"dropped\"} \(status.droppedInKernel)")
        lines.append("# TYPE vipfarm_heartbeats_rejected_total counter")
        for (reason, value) in status.heartbeatsRejected.sorted(by: { $0.key < $1.key }) {
            lines.append("vipfarm_heartbeats_rejected_total{\(labels),reason=\"\(reason)\"} \(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
