import Hashing

/// Which buckets' TCP frames the kernel delivers or forwards itself (docs/engine.md, "Kernel delivery"): those whose
/// every frame the engine would decide the same way whatever the flow table holds and whether or not it is a SYN.
/// That is a bucket in steady ownership: no handover into or out of it, not held, and in directed or relay delivery
/// no previous owner the director must route established connections to. Every other bucket stays with the engine,
/// whose flow table decides it connection by connection.
enum KernelDeliveryPlan {
    /// Per bucket, the classifier's action (`BucketFilterProgram.action`): deliver in place (the interface's stack
    /// takes it) or, in relay delivery, into the TAP (whose MAC the frame is given), forward to the owner (a director
    /// in directed delivery), or 0.
    static func actions(for state: EngineState, tapMAC: UInt64) -> [UInt64] {
        let count = state.table.count
        // A node that is not the directed director drops what reaches its ring.
        guard state.role.decidesClientFrames else { return Array(repeating: 0, count: count) }
        let role = state.role
        let node = state.node.rawValue
        let deliver =
            role.interfaceTakesVIPFrames
            ? BucketFilterProgram.action(BucketFilterProgram.deliverInPlaceKind, mac: 0)
            : BucketFilterProgram.action(BucketFilterProgram.deliverIntoTAPKind, mac: tapMAC)
        let (owners, held, handover) = (state.table.rawOwners, state.heldBuckets, state.handoverBuckets)
        let (previousOwners, released, macs) = (state.previousOwners, state.releasedBuckets, state.bucketMACs)
        let holdTaking = state.holdTaking
        var actions = [UInt64](repeating: 0, count: count)
        // An index loop: a swap runs on the heartbeat loop, in debug builds too.
        var bucket = 0
        while bucket < count {
            defer { bucket += 1 }
            let owner = owners[bucket]
            guard owner != 0 else { continue }
            if holdTaking && held[bucket] { continue }
            // A director routes a bucket in a handover by connection.
            if role.steersHandovers && previousOwners[bucket] != 0 { continue }
            if owner == node {
                if !handover[bucket] { actions[bucket] = deliver }
                continue
            }
            // Forwarding a bucket it released would cut the connections it still serves there; relay forwards only
            // a client's own frames (not a peer's), which the classifier does not tell apart.
            guard role.forwardsWholeBuckets, !released[bucket], macs[bucket] != 0 else { continue }
            actions[bucket] = BucketFilterProgram.action(BucketFilterProgram.forwardKind, mac: macs[bucket])
        }
        return actions
    }

    /// Buckets this node serves connections in from `new` on that the kernel delivered before, so that its flow
    /// table does not know their connections: released in a handover, in flood or relay delivery (in directed
    /// delivery the director sends the connections it does not know to the previous owner). `old`: the actions
    /// before, nil when they were for buckets of another shape (every released bucket then).
    static func released(from old: [UInt64]?, to new: EngineState) -> [Bool] {
        guard new.delivery != .directed else { return Array(repeating: false, count: new.table.count) }
        guard let old, old.count == new.table.count else { return new.releasedBuckets }
        var released = new.releasedBuckets
        var bucket = 0
        while bucket < old.count {
            if old[bucket] == 0 { released[bucket] = false }
            bucket += 1
        }
        return released
    }
}
