import TapEngine

/// Whether the delivery mode in use still works while the farm runs, from the probe frames (`ProbeFrames`) each node
/// sends once a second: a switch reconfigured, a VM moved to a host whose virtual switch is strict. A peer is judged
/// once it has been alive for a whole window; the watch only reports (logs, status, `/metrics`): switching modes
/// under a running farm is the operator's call.
struct DeliveryWatch {
    /// How long a kind of frame may stay away from a live peer before the watch says so.
    static let windowMilliseconds = 5000

    let delivery: Delivery
    /// When each live peer was first seen alive.
    private var liveSince: [UInt16: Int] = [:]
    /// What does not work any more (nil: all is well, or nothing judged yet).
    private(set) var problem: String?
    /// A cheaper mode that works for every peer judged, if any.
    private(set) var cheaper: Delivery?

    init(delivery: Delivery) {
        self.delivery = delivery
    }

    /// Forgets when peers came alive (after this node's data path was rebuilt: its frames were lost meanwhile).
    mutating func restart() {
        liveSince = [:]
    }

    /// Judges the live peers `live` at `now` from when each kind of frame last came from them; returns a line to log
    /// when the verdict changes.
    mutating func evaluate(now: Int, live: Set<UInt16>, lastSeen: [ProbeFrames.Kind: [UInt16: Int]]) -> String? {
        liveSince = liveSince.filter { live.contains($0.key) }
        for peer in live where liveSince[peer] == nil { liveSince[peer] = now }
        let judged = liveSince.filter { now - $0.value >= Self.windowMilliseconds }.keys.sorted()
        func recent(_ kind: ProbeFrames.Kind, _ peer: UInt16) -> Bool {
            lastSeen[kind]?[peer].map { now - $0 < Self.windowMilliseconds } ?? false
        }
        let flooded = judged.filter { recent(.flood, $0) }
        let learned = judged.filter { recent(.forged, $0) && recent(.learned, $0) }
        let failing: [UInt16]
        let why: String
        switch delivery {
        case .flood:
            failing = judged.filter { !flooded.contains($0) }
            why = "the switch no longer floods unknown unicast to this node"
        case .directed:
            failing = judged.filter { !flooded.contains($0) && !learned.contains($0) }
            why = "the switch neither floods unknown unicast nor delivers to a server's second MAC any more"
        case .relay:
            failing = []
            why = ""
        }
        cheaper =
            judged.isEmpty
            ? nil
            : [Delivery.flood, .directed].first { mode in
                mode < delivery && (mode == .flood ? flooded : learned).count == judged.count
            }
        let next =
            failing.isEmpty
            ? nil
            : "probe frames from node\(failing.count > 1 ? "s" : "") \(failing.map(String.init).joined(separator: ", ")) "
                + "stopped arriving: \(why), so \(delivery) delivery loses frames (stop every node, then "
                + "start them with delivery: auto, or relay, which needs nothing of the switch)"
        defer { problem = next }
        guard next != problem else { return nil }
        return next.map { "delivery check FAILING: \($0)" } ?? "delivery check passes again"
    }
}
