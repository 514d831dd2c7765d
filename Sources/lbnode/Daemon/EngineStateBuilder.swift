import Hashing
import RouteSetup
import TapEngine

/// Turns membership views into engine states: the bucket table, this node's roles, and the handover sets of the
/// buckets that moved between live nodes (DESIGN.md "Ownership": planned moves keep established connections, moves
/// away from a dead node take everything at once).
struct EngineStateBuilder {
    let me: NodeID
    let seed: FarmSeed
    let vip: IPAddress
    let virtualMAC: UInt64
    let delivery: Delivery
    private(set) var rules: [PortRule]
    let tables: TableBuilder
    private(set) var generation: UInt64 = 0
    private(set) var table: BucketTable

    init(config: FarmConfig, virtualMAC: UInt64) throws {
        me = config.node.id
        seed = FarmSeed(farmName: config.farm.name)
        vip = IPAddress(bytes: config.farm.vip.bytes)!
        self.virtualMAC = virtualMAC
        delivery = config.farm.delivery
        tables = try TableBuilder(seed: seed, bucketCount: config.farm.buckets, algorithm: config.farm.table)
        table = try BucketTable.unowned(count: config.farm.buckets)
        rules = Self.portRules(config.rules)
    }

    /// New rules from a reloaded configuration; they take effect with the next state.
    mutating func replaceRules(_ rules: [FarmConfig.Rule]) {
        self.rules = Self.portRules(rules)
    }

    private static func portRules(_ rules: [FarmConfig.Rule]) -> [PortRule] {
        rules.map { rule in
            let mode: PortRule.Mode =
                switch rule.mode {
                case .balanced(let affinity): .balanced(affinity)
                case .single: .single(owner: nil)
                case .drop: .drop
                }
            return PortRule(proto: rule.proto, ports: rule.ports, mode: mode)
        }
    }

    /// The state for `view`.
    ///
    /// - Parameters:
    ///   - alive: every node still heard from (or this node), whatever its state: a bucket moving away from one of
    ///     them is a planned move, handed over; one moving away from a dead node is taken at once.
    ///   - macs: the real MAC of each node, for directed forwarding.
    ///   - handover: whether to mark the moved buckets (false when a handover window ends).
    mutating func state(for view: MembershipView, alive: Set<NodeID>, macs: [UInt16: UInt64], handover: Bool)
        -> EngineState
    {
        generation += 1
        let previous = table
        table = tables.build(view, generation: generation)
        let leader = view.members.first?.id
        var taking = [Bool](repeating: false, count: table.count)
        var releasing = [Bool](repeating: false, count: table.count)
        var previousOwners = [UInt16](repeating: 0, count: table.count)
        if handover {
            for bucket in 0..<table.count {
                guard let old = previous.owner(ofBucket: bucket), alive.contains(old),
                    let new = table.owner(ofBucket: bucket), new != old
                else { continue }
                taking[bucket] = new == me
                releasing[bucket] = old == me
                previousOwners[bucket] = old.rawValue
            }
        }
        // A `single` rule is served by the lowest ID in the view (priority by ID), with failover.
        let resolvedRules = rules.map { rule in
            guard case .single = rule.mode else { return rule }
            return PortRule(proto: rule.proto, ports: rule.ports, mode: .single(owner: leader))
        }
        return EngineState(
            generation: generation, node: me, seed: seed, vip: vip, virtualMAC: virtualMAC, table: table,
            rules: resolvedRules, delivery: delivery, isARPLeader: leader == me,
            isDirector: delivery == .directed && leader == me, handoverBuckets: taking, releasedBuckets: releasing,
            previousOwners: leader == me ? previousOwners : nil, nodeMACs: macs)
    }
}
