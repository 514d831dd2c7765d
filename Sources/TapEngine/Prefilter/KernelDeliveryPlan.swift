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
        (0..<state.table.count).map { bucket in
            guard let owner = state.table.owner(ofBucket: bucket) else { return 0 }
            if state.holdTaking && state.heldBuckets[bucket] { return 0 }
            // A node that is not the directed director drops what reaches its ring; a director routes a bucket in a
            // handover by connection.
            guard state.role.decidesClientFrames else { return 0 }
            if state.role.steersHandovers && state.previousOwners[bucket] != 0 { return 0 }
            if owner == state.node {
                guard !state.handoverBuckets[bucket] else { return 0 }
                return state.role.interfaceTakesVIPFrames
                    ? BucketFilterProgram.action(BucketFilterProgram.deliverInPlaceKind, mac: 0)
                    : BucketFilterProgram.action(BucketFilterProgram.deliverIntoTAPKind, mac: tapMAC)
            }
            // Forwarding a bucket it released would cut the connections it still serves there; relay forwards only
            // a client's own frames (not a peer's), which the classifier does not tell apart.
            guard state.role.forwardsWholeBuckets, !state.releasedBuckets[bucket], state.bucketMACs[bucket] != 0 else {
                return 0
            }
            return BucketFilterProgram.action(BucketFilterProgram.forwardKind, mac: state.bucketMACs[bucket])
        }
    }

    /// Buckets this node serves connections in from `new` on that the kernel delivered before, so that its flow
    /// table does not know their connections: released in a handover, in flood or relay delivery (in directed
    /// delivery the director sends the connections it does not know to the previous owner). `old`: the actions
    /// before, nil when they were for buckets of another shape (every released bucket then).
    static func released(from old: [UInt64]?, to new: EngineState) -> [Bool] {
        guard new.delivery != .directed else { return Array(repeating: false, count: new.table.count) }
        guard let old, old.count == new.table.count else { return new.releasedBuckets }
        return (0..<old.count).map { old[$0] != 0 && new.releasedBuckets[$0] }
    }
}
