import Hashing

/// Which buckets' frames the kernel delivers, forwards or drops itself (docs/engine.md, "Kernel delivery").
///
/// TCP: the buckets whose every frame the engine would decide the same way whatever the flow table holds and whether
/// or not it is a SYN. That is a bucket in steady ownership: no handover into or out of it, not held, and in directed
/// or relay delivery no previous owner the director must route established connections to. Every other bucket stays
/// with the engine, whose flow table decides it connection by connection.
///
/// UDP: the engine decides a datagram by its bucket's owner alone, so where the interface's stack takes the VIP's
/// frames (flood delivery, the directed director) the kernel decides every bucket: deliver, forward or drop. No
/// bucket's UDP then moves between the kernel and the ring at a handover, where the two could both take a datagram
/// for a moment (TCP takes that as a duplicate segment; a UDP application would see it twice). In relay delivery the
/// classifier cannot tell a client's frame from one a peer relayed, and UDP stays with the engine.
enum KernelDeliveryPlan {
    /// Per bucket, the classifier's action (`BucketFilterProgram.action`): for TCP and for UDP, deliver in place (the
    /// interface's stack takes it) or, in relay delivery, into the TAP (whose MAC the frame is given), forward to the
    /// owner (a director in directed delivery), drop (UDP), or 0.
    static func actions(for state: EngineState, tapMAC: UInt64) -> [UInt64] {
        let count = state.table.count
        // A node that is not the directed director drops what reaches its ring.
        guard state.role.decidesClientFrames else { return Array(repeating: 0, count: count) }
        let role = state.role
        let node = state.node.rawValue
        let inPlace = role.interfaceTakesVIPFrames
        let deliver = inPlace ? BucketFilterProgram.deliverInPlaceKind : BucketFilterProgram.deliverIntoTAPKind
        let (owners, held, handover) = (state.table.rawOwners, state.heldBuckets, state.handoverBuckets)
        let (previousOwners, released, macs) = (state.previousOwners, state.releasedBuckets, state.bucketMACs)
        let holdTaking = state.holdTaking
        var actions = [UInt64](repeating: 0, count: count)
        // An index loop: a swap runs on the heartbeat loop, in debug builds too.
        var bucket = 0
        while bucket < count {
            defer { bucket += 1 }
            let owner = owners[bucket]
            let isHeld = holdTaking && held[bucket]
            var tcp: UInt64 = 0, udp: UInt64 = 0, mac: UInt64 = 0
            if owner == node {
                udp = isHeld ? BucketFilterProgram.dropKind : deliver
                // A director routes a bucket in a handover by connection.
                if !isHeld && !handover[bucket] && !(role.steersHandovers && previousOwners[bucket] != 0) {
                    tcp = deliver
                }
                if !inPlace { mac = tapMAC }
            } else if role.forwardsWholeBuckets && owner != 0 && macs[bucket] != 0 {
                udp = BucketFilterProgram.forwardKind
                mac = macs[bucket]
                // Forwarding a bucket it released would cut the connections it still serves there.
                if !released[bucket] && previousOwners[bucket] == 0 && !isHeld { tcp = BucketFilterProgram.forwardKind }
            } else {
                udp = BucketFilterProgram.dropKind
            }
            // Relay forwards only a client's own frames (not a peer's), which the classifier does not tell apart.
            if !inPlace { udp = 0 }
            if tcp != 0 || udp != 0 { actions[bucket] = BucketFilterProgram.action(tcp: tcp, udp: udp, mac: mac) }
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
            if BucketFilterProgram.tcpKind(old[bucket]) == 0 { released[bucket] = false }
            bucket += 1
        }
        return released
    }

    /// Buckets in which the directed director must learn its own connections from its kernel (`Engine.swap`), so that
    /// it routes a handover by connection (`Decider.directDuringHandover`): those with a handover mark that this node
    /// owned first, or owns and owned already. Its flow table knows only the connections whose SYN it saw as the
    /// director; the kernel took its own others (forwarded by the director before it, or delivered by the
    /// classifier). Not a bucket it takes only now (it has no connection there: a restarted director's buckets), nor
    /// again a mark the state before had too, as the director: what it learnt then, and the SYNs it saw since, are
    /// known.
    static func ownConnectionsToLearn(from old: EngineState?, to new: EngineState) -> [Bool] {
        let count = new.table.count
        guard new.delivery == .directed, new.role.steersHandovers else { return Array(repeating: false, count: count) }
        let old = old.flatMap { $0.table.count == count ? $0 : nil }
        let oldMarks = old.flatMap { $0.delivery == .directed && $0.role.steersHandovers ? $0.previousOwners : nil }
        let oldOwners = old?.table.rawOwners
        let (marks, owners, me) = (new.previousOwners, new.table.rawOwners, new.node.rawValue)
        var learn = [Bool](repeating: false, count: count)
        // An index loop: a swap runs on the heartbeat loop, in debug builds too.
        var bucket = 0
        while bucket < count {
            defer { bucket += 1 }
            let first = marks[bucket]
            guard first != 0, oldMarks?[bucket] != first else { continue }
            learn[bucket] = first == me || (owners[bucket] == me && (oldOwners.map { $0[bucket] == me } ?? true))
        }
        return learn
    }
}
