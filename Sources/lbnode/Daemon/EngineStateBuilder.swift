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
    /// Every configured node's rendezvous logs, computed once: a view change then builds its table in comparisons.
    let logs: RendezvousLogs
    private(set) var generation: UInt64 = 0
    private(set) var table: BucketTable {
        didSet { shares = table.shares }
    }
    /// Buckets per node of `table`, counted once per table (the status reads them at every heartbeat taken in).
    private(set) var shares: [NodeID: Int] = [:]
    /// Per bucket: the last state takes it from a node that is alive and owned it in the previous table (a join or a
    /// drain): in flood mode that node may still serve it until it hears the new view. Buckets of a dead node, even
    /// ones with handover marks from an earlier move, have nobody else serving them; buckets this node kept have
    /// nobody else either.
    private(set) var takenFromLivePeers: [Bool] = []
    /// Whether any bucket is.
    private(set) var takesFromLivePeer = false
    /// The handover marks of the last state, carried into the next while the handover window is open.
    private var handover = Handover(count: 0)

    /// Per bucket: the node that served it before the first planned move of the window (0: no move, or that node
    /// died), and this node's roles.
    struct Handover {
        var firstOwners: [UInt16]
        var taking: [Bool]
        var releasing: [Bool]
        /// A node other than the first owner and this one owned the bucket within the window: connections this node
        /// does not know there may be that node's.
        var ownedByAnother: [Bool]

        init(count: Int) {
            firstOwners = [UInt16](repeating: 0, count: count)
            taking = [Bool](repeating: false, count: count)
            releasing = [Bool](repeating: false, count: count)
            ownedByAnother = [Bool](repeating: false, count: count)
        }
    }

    init(config: FarmConfig, virtualMAC: UInt64) throws {
        me = config.node.id
        seed = FarmSeed(farmName: config.farm.name)
        vip = config.farm.vipAddress
        self.virtualMAC = virtualMAC
        delivery = config.farm.delivery
        tables = try TableBuilder(seed: seed, bucketCount: config.farm.buckets, algorithm: config.farm.table)
        logs = tables.logs(for: config.peers.map(\.id) + [config.node.id])
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
    /// Within a handover window the marks accumulate: a bucket that moved at a join and again at a drain a few
    /// seconds later still sends the connections that predate both to the node that served it first, and a node that
    /// released a bucket keeps serving its connections there until the window closes.
    ///
    /// - Parameters:
    ///   - alive: every node still heard from (or this node), whatever its state: a bucket moving away from one of
    ///     them is a planned move, handed over; one moving away from a dead node is taken at once.
    ///   - stopped: those of them that stopped and are expected back (`MemberState.stopped`): their connections keep
    ///     their marks, but they serve nothing meanwhile, so taking their buckets waits for nobody (no hold).
    ///   - leader: the ARP leader and, directed, the director (`Membership.leader`).
    ///   - macs: the real MAC of each node, for directed forwarding.
    ///   - handover: whether to keep and add handover marks (false when the handover window ends).
    mutating func state(
        for view: MembershipView, alive: Set<NodeID>, stopped: Set<NodeID> = [], leader: NodeID?,
        macs: [UInt16: UInt64], handover: Bool
    ) -> EngineState {
        generation += 1
        let previous = table
        table = tables.build(view, generation: generation, logs: logs)
        let carried = self.handover
        self.handover = Handover(count: table.count)
        takesFromLivePeer = false
        takenFromLivePeers = Array(repeating: false, count: table.count)
        if handover { markHandovers(from: previous, carried: carried, alive: alive, stopped: stopped) }
        // A `single` rule is served by the lowest ID in the view (priority by ID), with failover.
        let singleOwner = view.members.first?.id
        let resolvedRules = rules.map { rule in
            guard case .single = rule.mode else { return rule }
            return PortRule(proto: rule.proto, ports: rule.ports, mode: .single(owner: singleOwner))
        }
        return EngineState(
            generation: generation, node: me, seed: seed, vip: vip, virtualMAC: virtualMAC, table: table,
            rules: resolvedRules, delivery: delivery, isARPLeader: leader == me,
            isDirector: delivery != .flood && leader == me, handoverBuckets: self.handover.taking,
            releasedBuckets: self.handover.releasing,
            previousOwners: previousOwners(leader: leader, stopped: stopped), nodeMACs: macs)
    }

    /// Where the connections that predate a handover go. The director (directed, relay) sends the connections it knows
    /// where they are and the others to the first owner (which may own the bucket again: the connections opened
    /// meanwhile on another node are known). In flood delivery every node sees its buckets' frames, and a live first
    /// owner serves its connections itself; one stopped for a restart does not, but its kernel still has them and
    /// answers them by itself: the bucket's new owner sends it their segments. Only where the stopped node is the
    /// window's first owner (in a farm steady for the handover window, every bucket it had) and no other node has owned
    /// the bucket since: had another node owned it, first or in between, a connection this node does not know may be
    /// that one's, and the stopped node's kernel would reset it (a table reshuffled by the stop moves a few buckets
    /// between the survivors too).
    private func previousOwners(leader: NodeID?, stopped: Set<NodeID>) -> [UInt16]? {
        guard delivery == .flood else { return leader == me ? handover.firstOwners : nil }
        guard !stopped.isEmpty else { return nil }
        let stoppedIDs = Set(stopped.map(\.rawValue))
        let (firstOwners, taking, another) = (handover.firstOwners, handover.taking, handover.ownedByAnother)
        var owners = [UInt16](repeating: 0, count: firstOwners.count)
        var bucket = 0
        while bucket < owners.count {
            if taking[bucket] && !another[bucket] && stoppedIDs.contains(firstOwners[bucket]) {
                owners[bucket] = firstOwners[bucket]
            }
            bucket += 1
        }
        return owners
    }

    /// Marks the buckets of `table` that moved from `previous` between live nodes, and carries `carried`'s marks of
    /// the window on. An index loop that asks the sets only about buckets that moved or carry a mark: it runs on the
    /// heartbeat loop at every view change, in debug builds too.
    private mutating func markHandovers(
        from previous: BucketTable, carried: Handover, alive: Set<NodeID>, stopped: Set<NodeID>
    ) {
        let aliveIDs = Set(alive.map(\.rawValue))
        let stoppedIDs = Set(stopped.map(\.rawValue))
        let (newOwners, oldOwners) = (table.rawOwners, previous.rawOwners)
        let carriedMarks = carried.firstOwners.count == table.count
        let me = self.me.rawValue
        var bucket = 0
        while bucket < newOwners.count {
            defer { bucket += 1 }
            let (new, old) = (newOwners[bucket], oldOwners[bucket])
            guard new != 0 else { continue }
            let moved = old != new
            if moved && new == me && aliveIDs.contains(old) && !stoppedIDs.contains(old) {
                takesFromLivePeer = true
                takenFromLivePeers[bucket] = true
            }
            // Taken from a node that died: at once, whatever moved before (DESIGN: after a crash the new owner takes
            // everything). Marks kept from an earlier move would send the dead node's connections to a first owner
            // that never had them while the new owner takes only SYNs: silent for the rest of the window, not reset.
            if moved && !aliveIDs.contains(old) { continue }
            // The connections that predate the window are on the first owner; if it died, they died with it.
            var first = carriedMarks ? carried.firstOwners[bucket] : 0
            var another = first != 0 && carried.ownedByAnother[bucket]
            if first != 0 && !aliveIDs.contains(first) { (first, another) = (0, false) }
            if first == 0 && moved { first = old }
            guard first != 0 else { continue }
            another = another || (old != 0 && old != first && old != me) || (new != first && new != me)
            handover.firstOwners[bucket] = first
            handover.ownedByAnother[bucket] = another
            handover.taking[bucket] = new == me
            handover.releasing[bucket] = new != me && ((carriedMarks && carried.releasing[bucket]) || old == me)
        }
    }
}
