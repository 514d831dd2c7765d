/// How a `TableBuilder` trades balance against movement. Both rank the nodes of every bucket by weighted rendezvous
/// scores (`score(node, bucket) = weight / -log2(u)`, `u = VH1(seed; node << 32 | bucket)`), so both keep a bucket on
/// its node as long as that node stays; they differ in whether a node may take more than its share.
///
/// The two promises cannot both hold exactly: a table that moves only a departed node's buckets for every possible
/// change must give each bucket to the top of a fixed ranking (that is rendezvous hashing), and then each node's share
/// is a binomial draw (±6% for one standard deviation at 16 nodes and 4096 buckets). `docs/hashing.md` has the
/// measured figures.
public enum TableAlgorithm: String, CaseIterable, Sendable {
    /// Every bucket goes to its highest-ranked node, with no cap: removing a node moves only that node's buckets and
    /// adding one moves only buckets to it, but shares vary by chance.
    case rendezvous
    /// Buckets are filled in order, each to its highest-ranked node that still has room under its exact weighted
    /// quota: every node owns its quota to within one bucket, and a change of view moves, beyond the buckets that must
    /// move, about 1% of the table between other nodes (the engine's handover keeps their established flows).
    case balanced
}

/// Builds the bucket table of a membership view: a pure function of (seed, bucket count, algorithm, view).
///
/// Every node of a farm computes the same table from the same view, with integer arithmetic only, whatever its
/// architecture or the order in which it learnt of the members.
public struct TableBuilder: Sendable {
    public let seed: FarmSeed
    public let bucketCount: Int
    public let algorithm: TableAlgorithm

    /// - Throws: `BucketCountError` unless `bucketCount` is a power of two in `BucketTable.countRange`.
    public init(seed: FarmSeed, bucketCount: Int = BucketTable.defaultCount, algorithm: TableAlgorithm = .balanced)
        throws(BucketCountError)
    {
        try BucketTable.validate(count: bucketCount)
        self.seed = seed
        self.bucketCount = bucketCount
        self.algorithm = algorithm
    }

    /// The table of `view`, stamped with `generation`. With `logs` that hold the view's members (`logs(for:)`), it
    /// costs comparisons only; the table is the same either way.
    public func build(_ view: MembershipView, generation: UInt64, logs: RendezvousLogs? = nil) -> BucketTable {
        let members = view.members
        guard !members.isEmpty else {
            return BucketTable(owners: Array(repeating: 0, count: bucketCount), generation: generation)
        }
        var remaining: [UInt64] =
            switch algorithm {
            case .rendezvous: Array(repeating: .max, count: members.count)
            case .balanced: quotas(of: members)
            }
        let columns = members.map { member in
            logs.flatMap { $0.bucketCount == bucketCount ? $0.columns[member.id] : nil } ?? column(of: member.id)
        }
        let weights = members.map { UInt64($0.weight) }
        let ids = members.map(\.id.rawValue)
        var owners = [UInt16](repeating: 0, count: bucketCount)
        // Index loops, no tuples: this runs on the heartbeat loop at every view change, in debug builds too.
        var bucket = 0
        while bucket < bucketCount {
            var best = -1
            var bestWeight: UInt64 = 0
            var bestLog: UInt64 = 1
            var index = 0
            while index < ids.count {
                if remaining[index] > 0 {
                    let log = UInt64(columns[index][bucket])
                    // weight / log > bestWeight / bestLog, cross-multiplied (both logs are positive). Members are
                    // sorted by ID, so on an exact tie the lower ID, seen first, stays best.
                    if best < 0 || weights[index] * bestLog > bestWeight * log {
                        (best, bestWeight, bestLog) = (index, weights[index], log)
                    }
                }
                index += 1
            }
            owners[bucket] = ids[best]
            remaining[best] -= 1
            bucket += 1
        }
        return BucketTable(owners: owners, generation: generation)
    }

    /// The rendezvous logs of `nodes` (at most `RendezvousLogs.entryLimit` in all, the first nodes by ID), to build
    /// every later table from.
    public func logs(for nodes: some Sequence<NodeID>) -> RendezvousLogs {
        let kept = Set(nodes).sorted().prefix(max(1, RendezvousLogs.entryLimit / bucketCount))
        return RendezvousLogs(
            bucketCount: bucketCount, columns: Dictionary(uniqueKeysWithValues: kept.map { ($0, column(of: $0)) }))
    }

    /// `-log2(u)` of every bucket for `node` (Q.24, at most 64 << 24, so it fits 32 bits): the denominator of its
    /// scores, the weight being the numerator.
    func column(of node: NodeID) -> [UInt32] {
        let rendezvousSeed = seed.forDomain(.rendezvous)
        return (0..<bucketCount).map { bucket in
            let u = FlowHash.step(rendezvousSeed, UInt64(node.rawValue) << 32 | UInt64(bucket))
            return UInt32(FixedPointLog.negativeLog2Q24(u))
        }
    }

    /// Each member's exact share of the buckets by largest remainder: `floor(B * w / W)`, plus one bucket for the
    /// members with the largest remainders (lower ID first on a tie) until the quotas add up to B.
    func quotas(of members: [Member]) -> [UInt64] {
        let total = members.reduce(UInt64(0)) { $0 + UInt64($1.weight) }
        let buckets = UInt64(bucketCount)
        var quotas = members.map { buckets * UInt64($0.weight) / total }
        let remainders = members.map { buckets * UInt64($0.weight) % total }
        let missing = Int(buckets - quotas.reduce(0, +))
        let order = members.indices.sorted {
            remainders[$0] != remainders[$1] ? remainders[$0] > remainders[$1] : $0 < $1
        }
        for index in order.prefix(missing) { quotas[index] += 1 }
        return quotas
    }
}

/// The rendezvous logs (`TableBuilder.column(of:)`) of some nodes for every bucket. They depend only on the seed, the
/// node and the bucket, so a node computes its farm's once and each table it builds after costs comparisons only: a
/// view changes on the heartbeat loop, where a build of many milliseconds delays the node's heartbeats.
public struct RendezvousLogs: Sendable {
    /// The most logs kept (16 MiB): a farm of 57 nodes at 65,536 buckets fits; beyond, the other nodes' are computed
    /// at each build.
    public static let entryLimit = 1 << 22
    let bucketCount: Int
    let columns: [NodeID: [UInt32]]
}
