import Hashing

/// A port rule: which traffic it covers and how it is shared. The first rule that matches a frame wins.
public struct PortRule: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// Balanced over the bucket table with this affinity.
        case balanced(Affinity)
        /// Served by one node (chosen by the control plane by priority, with failover); `nil` = nobody now.
        case single(owner: NodeID?)
        /// Dropped.
        case drop
    }

    /// `nil` matches every protocol.
    public var proto: IPProtocol?
    /// Server port ranges; empty matches every port.
    public var ports: [ClosedRange<UInt16>]
    public var mode: Mode

    public init(proto: IPProtocol?, ports: [ClosedRange<UInt16>], mode: Mode) {
        self.proto = proto
        self.ports = ports
        self.mode = mode
    }

    func matches(_ proto: IPProtocol, port: UInt16) -> Bool {
        (self.proto == nil || self.proto == proto) && (ports.isEmpty || ports.contains { $0.contains(port) })
    }
}

/// Everything the engine needs to decide a frame, built by the control plane and swapped in between batches: the
/// engine never reads configuration per packet. Immutable once built.
public struct EngineState: Sendable {
    /// Increases with every new state.
    public var generation: UInt64
    /// This node.
    public var node: NodeID
    public var seed: FarmSeed
    public var vip: IPAddress
    /// The farm's virtual MAC (48 bits).
    public var virtualMAC: UInt64
    public var table: BucketTable
    /// Rules in order; a frame no rule matches is balanced with `defaultAffinity`.
    public var rules: [PortRule]
    public var defaultAffinity: Affinity
    public let delivery: Delivery
    /// This node answers ARP (and IPv6 neighbour solicitations) for the VIP.
    public var isARPLeader: Bool
    /// In `directed` and `relay` mode, this node receives the VIP's frames and forwards what it does not own.
    public let isDirector: Bool
    /// What `delivery` means for this node, worked out once: the data path reads it instead of testing the mode.
    public let role: DeliveryRole
    /// Per bucket: this node is taking it over in a planned handover, so it takes only new TCP connections there
    /// while the old owner finishes its established ones.
    public var handoverBuckets: [Bool]
    /// Per bucket: this node gave it up in a handover (or it moved between live nodes after a failure) and keeps
    /// serving the TCP connections it has there. Only these buckets make the engine look up flows it does not own,
    /// so a steady farm never touches the flow table for other nodes' traffic.
    public var releasedBuckets: [Bool]
    /// Per bucket, for the director in `directed` mode: the node that owned it before the planned handovers still in
    /// progress (0 = none; it may own the bucket again). While it is set the director remembers the connections that
    /// start (SYN) and sends the established ones it does not know to that node. In `flood` mode, on the node taking
    /// the bucket: the node it was taken from while that node is stopped for a restart, which gets the established
    /// connections this node does not know (its kernel still has them).
    public var previousOwners: [UInt16]
    /// Each node's real MAC by raw ID, for directed forwarding.
    public var nodeMACs: [UInt16: UInt64]
    /// Per bucket: its owner's real MAC (from `nodeMACs`), so forwarding needs no dictionary per packet.
    public private(set) var bucketMACs: [UInt64]
    /// This node's real MAC, and its peers' (relay mode: a frame from a peer's MAC was relayed to this node).
    public private(set) var ownMAC: UInt64
    public private(set) var peerMACs: [UInt64]
    /// Whether `heldBuckets` are held; the control plane lifts the hold once the peers report its view (release
    /// before acquire). A Bool beside the array, so that a steady engine pays one test per frame, not a lookup.
    public private(set) var holdTaking = false
    /// Per bucket: taken from a live node in the change that built this state, and not served yet but for the
    /// connections this node already has there: the old owner may not have heard of the move, and in flood mode both
    /// would answer.
    public private(set) var heldBuckets: [Bool] = []

    /// Holds `buckets` (see `heldBuckets`) until a state without the hold replaces this one.
    public mutating func hold(_ buckets: [Bool]) {
        heldBuckets = buckets
        holdTaking = buckets.contains(true)
    }

    public init(
        generation: UInt64, node: NodeID, seed: FarmSeed, vip: IPAddress, virtualMAC: UInt64, table: BucketTable,
        rules: [PortRule] = [], defaultAffinity: Affinity = .none, delivery: Delivery = .flood,
        isARPLeader: Bool = false, isDirector: Bool = false, handoverBuckets: [Bool]? = nil,
        releasedBuckets: [Bool]? = nil, previousOwners: [UInt16]? = nil, nodeMACs: [UInt16: UInt64] = [:]
    ) {
        self.generation = generation
        self.node = node
        self.seed = seed
        self.vip = vip
        self.virtualMAC = virtualMAC
        self.table = table
        self.rules = rules
        self.defaultAffinity = defaultAffinity
        self.delivery = delivery
        self.isARPLeader = isARPLeader
        self.isDirector = isDirector
        role = DeliveryRole(delivery, isDirector: isDirector)
        self.handoverBuckets = handoverBuckets ?? Array(repeating: false, count: table.count)
        self.releasedBuckets = releasedBuckets ?? Array(repeating: false, count: table.count)
        self.previousOwners = previousOwners ?? Array(repeating: 0, count: table.count)
        self.nodeMACs = nodeMACs
        bucketMACs = Self.ownerMACs(table, nodeMACs)
        ownMAC = nodeMACs[node.rawValue] ?? 0
        peerMACs = nodeMACs.filter { $0.key != node.rawValue }.map(\.value).filter { $0 != 0 }
    }

    /// Per bucket, its owner's MAC: looked up in an array by ID in an index loop, not in the dictionary per bucket
    /// (a state is built on the heartbeat loop, in debug builds too).
    private static func ownerMACs(_ table: BucketTable, _ nodeMACs: [UInt16: UInt64]) -> [UInt64] {
        var byID = [UInt64](repeating: 0, count: Int(nodeMACs.keys.max() ?? 0) + 1)
        for (id, mac) in nodeMACs { byID[Int(id)] = mac }
        let owners = table.rawOwners
        var macs = [UInt64](repeating: 0, count: owners.count)
        var bucket = 0
        while bucket < owners.count {
            let owner = Int(owners[bucket])
            if owner < byID.count { macs[bucket] = byID[owner] }
            bucket += 1
        }
        return macs
    }

    /// The MAC that ARP replies and announcements for the VIP give: the virtual MAC, or in relay mode this node's own.
    public var answerMAC: UInt64 { role.usesOwnMAC ? ownMAC : virtualMAC }

    /// The mode of the first rule that matches, or the default.
    @inline(__always)
    func mode(for proto: IPProtocol, port: UInt16) -> PortRule.Mode {
        for rule in rules where rule.matches(proto, port: port) { return rule.mode }
        return .balanced(defaultAffinity)
    }
}
