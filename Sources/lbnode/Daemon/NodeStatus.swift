/// What `lbnode status` shows: a snapshot the heartbeat loop takes when asked (`StatusExchange`).
struct NodeStatus: Codable, Sendable {
    /// One configured node (this one too), whatever became of it: a node that died, left or never came stays listed,
    /// so an alert can fire on a server that did not come back.
    struct Member: Codable, Sendable {
        var id: UInt16
        var address: String = ""
        /// active, joining, draining, drained, left, dead, or never heard.
        var state: String
        var healthy: Bool
        var weight: UInt32
        var buckets: Int
        var inView: Bool
        /// Milliseconds since its last heartbeat (nil: this node, or never heard).
        var lastHeardMillisecondsAgo: Int? = nil
        /// Heartbeats this node sent it, and gave up (send buffer full) or had refused by the kernel.
        var heartbeatsSent: UInt64 = 0
        var heartbeatsNotSent: UInt64 = 0
        var lastSendError: String? = nil
        /// Silent for a while: sent one heartbeat a second instead of every interval.
        var away = false
        /// What the kernel's neighbour entry says when its address does not resolve ("no ARP answer").
        var neighbour: String? = nil
    }

    struct EngineThread: Codable, Sendable, Equatable {
        var received: UInt64
        var delivered: UInt64
        var forwarded: UInt64
        var dropped: UInt64
        var wrongThread: UInt64
        var ringDrops: UInt64
        var flows: Int
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
    /// The bucket prefilter: running, or why not; frames of other nodes' buckets it kept out of the ring, and frames
    /// it let in by their bucket.
    var prefilterRunning = false
    /// Per engine thread: frames received, delivered, forwarded, dropped, and that reached the wrong thread; TCP
    /// connections in its table. The TAP's queues the threads write into (fewer than the threads: they share one).
    var threads: [EngineThread] = []
    var tapQueues = 1
    var prefilterReason: String? = nil
    var prefilterPassed: UInt64 = 0
    var prefilterDropped: UInt64 = 0
    /// Pings to the VIP beyond the echo budget that the prefilter kept out of the ring.
    var prefilterEchoDropped: UInt64 = 0
    /// Kernel delivery: running, or why not; frames the kernel delivered, forwarded to their owners and dropped (UDP
    /// of other nodes' buckets) itself.
    var kernelDelivery = false
    var kernelDeliveryReason: String? = nil
    var deliveredInKernel: UInt64 = 0
    var forwardedInKernel: UInt64 = 0
    var droppedInKernel: UInt64 = 0
    /// Datagrams the kernel dropped on the heartbeat socket (its filter refused them, or its queue was full).
    var heartbeatsDroppedByKernel: UInt64 = 0
    var lastChange: String?
    var lastFailover: String?
    /// Why this node serves nothing until it hears the current view, or nil.
    var fenced: String?
    /// Nodes alive (this one included) and nodes expected (configured, but those that left), and whether this side
    /// of the farm may serve.
    var liveNodes: Int = 1
    var expectedNodes: Int = 1
    var quorum: Bool = true
    /// How long a silent peer may stay silent before this node declares it dead, whether that is the long deadline
    /// of a host that drops received frames, and the longest silence of a peer heard late within 30 s (over two
    /// intervals; twice that is the deadline under lateness: `DeadlineTolerance`), or nil.
    var deadAfterMilliseconds: Int = 0
    var receiveLoss = false
    var longestPeerSilenceMilliseconds: Int?
    /// Nodes configured (this one included), and nodes serving (in this node's view).
    var configuredNodes: Int = 1
    var servingNodes: Int = 0
    /// The VIP, the interface and this node's address.
    var vip: String = ""
    var interface: String = ""
    var address: String = ""
    /// The checkers that do not pass, each with why.
    var checkersFailing: [String] = []
    /// While draining: the VIP's TCP connections in the kernel, and the engine's tracked ones.
    var drainConnections: Int? = nil
    /// While a handover window is open and a bucket carries its marks: seconds until it closes (longer while a node
    /// drains), and its length (`farm.handover_seconds`).
    var handoverSecondsLeft: Int? = nil
    var handoverSeconds: Int = 30
    /// The witness's address and whether it answers (nil without one).
    var witness: String?
    var witnessReachable: Bool?
    /// Why the data path cannot deliver, or nil.
    var dataPathFault: String?
    /// Times a peer with a lower ID claimed the leader's role that this node's view gave to this node.
    var leaderConflicts: UInt64 = 0
    /// `delivery: auto`, and why the probe picked the mode in use.
    var deliveryAuto = false
    var deliveryReason: String?
    /// What the delivery check found broken (a network that changed under the farm), or nil.
    var deliveryProblem: String?
    /// A cheaper mode the delivery check finds working for every peer, if any.
    var deliveryCheaper: String?
    /// Peers whose heartbeats name another delivery mode ("node 2: relay").
    var deliveryDisagreements: [String] = []
    /// Addresses that sent authentic heartbeats with this node's own ID.
    var duplicateIDs: [String] = []
    /// MACs of hosts other than the farm's nodes that answered for the VIP at the last look.
    var vipAlsoAnsweredBy: [String] = []
    /// Connections admitted to and evicted from the flow table.
    var flowsAdmitted: UInt64 = 0
    var flowsEvicted: UInt64 = 0
    /// What the heartbeat loop's own turns took: state changes (build and swap) and the longest turn.
    var loop = LoopTurnCost.Figures()
    /// Set when the heartbeat loop did not answer the reader in time (it is stalled): how old this snapshot is.
    var staleMilliseconds: Int? = nil
}
