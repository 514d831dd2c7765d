/// What `lbnode status` shows: a snapshot the daemon refreshes every loop.
struct NodeStatus: Codable, Sendable {
    struct Member: Codable, Sendable {
        var id: UInt16
        var state: String
        var healthy: Bool
        var weight: UInt32
        var buckets: Int
        var inView: Bool
    }

    var farm: String
    var node: UInt16
    var state: String
    var leader: UInt16?
    var delivery: String
    var agreed: Bool
    var generation: UInt64
    var members: [Member]
    var flows: Int
    var engine: [String: UInt64]
    /// Received frames by the offload metadata they carried (`OffloadKind`): how much of the traffic came merged or
    /// with partial checksums. Every kind is listed, zeros too.
    var offloads: [String: UInt64]
    var heartbeatsRejected: [String: UInt64]
    var lastChange: String?
    var lastFailover: String?
}
