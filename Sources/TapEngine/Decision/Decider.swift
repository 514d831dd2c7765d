import Hashing

/// What to do with one frame.
public enum Verdict: Sendable, Equatable {
    /// Write it into the TAP: this node serves it.
    case deliver
    /// Directed or relay mode, on the director: send it from this node's MAC to this owner MAC.
    case forward(UInt64)
    /// Answer the ARP request or neighbour solicitation for the VIP with the virtual MAC.
    case answer
    case drop(DropReason)
}

/// The per-frame decision (DESIGN.md "Ownership"): a connection this node has → deliver; bucket owned and the frame
/// may start a flow → deliver and record; otherwise drop or (director) forward. Pure but for the flow table it
/// updates.
///
/// The flow table holds TCP connections only. They are what a planned handover must not break: the old owner keeps
/// delivering a connection it has in a bucket it released, and the new owner takes only SYNs (and connections it
/// already took) in a bucket it is taking over. Other protocols follow the table at once, so that no datagram is
/// ever delivered by two nodes. The table is consulted for other nodes' buckets only when they are released ones.
public enum Decider {
    /// `decide`, with later fragments following their first fragment's verdict (`FragmentTable`).
    @inline(__always)
    public static func decide(
        _ frame: Frame, state: EngineState, flows: inout FlowTable, fragments: inout FragmentTable, now: UInt32
    ) -> Verdict {
        guard frame.isFragment else { return decide(frame, state: state, flows: &flows, now: now) }
        if let first = fragments.verdict(ofLater: frame, now: now) { return first }
        let verdict = decide(frame, state: state, flows: &flows, now: now)
        fragments.remember(frame, verdict, now: now)
        return verdict
    }

    public static func decide(_ frame: Frame, state: EngineState, flows: inout FlowTable, now: UInt32) -> Verdict {
        switch frame.kind {
        case .arpRequest, .neighbourSolicitation:
            guard frame.destination == state.vip else { return .drop(.otherARP) }
            return state.isARPLeader ? .answer : .drop(.notARPLeader)
        case .otherARP:
            return .drop(.otherARP)
        case .ip:
            break
        }
        guard frame.destination == state.vip else { return .drop(.notForVIP) }
        if !state.role.decidesClientFrames { return .drop(.notDirector) }
        if state.role.usesOwnMAC {
            // Only frames sent to this node's own MAC are its business; one a peer relayed was decided there.
            guard frame.destinationMAC == state.ownMAC else { return .drop(.otherHost) }
            if state.peerMACs.contains(frame.sourceMAC) { return relayed(frame, state: state, flows: &flows, now: now) }
        }
        switch state.mode(for: frame.key.proto, port: frame.key.serverPort) {
        case .drop:
            return .drop(.ruleDrop)
        case .single(let owner):
            guard let owner else { return .drop(.noOwner) }
            if owner == state.node { return .deliver }
            return forwardOrDrop(state.nodeMACs[owner.rawValue] ?? 0, state: state)
        case .balanced(let affinity):
            return decideBalanced(frame, affinity: affinity, state: state, flows: &flows, now: now)
        }
    }

    @inline(__always)
    static func decideBalanced(
        _ frame: Frame, affinity: Affinity, state: EngineState, flows: inout FlowTable, now: UInt32
    ) -> Verdict {
        let tracked = frame.key.proto == .tcp && !frame.isFragment
        let bucket = state.table.bucket(
            ofHash: affinity.bucketHash(of: frame.key, isFragment: frame.isFragment, seed: state.seed))
        guard let owner = state.table.owner(ofBucket: bucket) else { return .drop(.noOwner) }
        let me = state.node.rawValue
        if tracked && state.role.steersHandovers && state.previousOwners[bucket] != 0 {
            return directDuringHandover(
                frame, owner: owner.rawValue, previous: state.previousOwners[bucket],
                state: state, flows: &flows, now: now)
        }
        guard owner == state.node else {
            // A bucket this node gave up: it still serves the connections it has there.
            if tracked && state.releasedBuckets[bucket] && flows.value(of: frame.key, now: now) == me {
                endIfClosing(frame, flows: &flows, now: now)
                return .deliver
            }
            return forwardOrDrop(state.bucketMACs[bucket], state: state)
        }
        // Taking the bucket over: the connections this node already has there are its own (nobody else serves them),
        // held or not; then new connections only.
        if tracked && state.handoverBuckets[bucket] && flows.value(of: frame.key, now: now) == me {
            if !frame.isTCPSyn { flows.confirm(frame.key) }
            endIfClosing(frame, flows: &flows, now: now)
            return .deliver
        }
        if state.holdTaking && state.heldBuckets[bucket] { return .drop(.handoverPending) }
        guard tracked else { return .deliver }
        if state.handoverBuckets[bucket] {
            guard frame.isTCPSyn else { return establishedInTakenBucket(bucket, state: state) }
            flows.insert(frame.key, now: now, value: me)
            return .deliver
        }
        track(frame, flows: &flows, now: now, value: me)
        return .deliver
    }

    /// A segment of a connection this node does not know, in a bucket it is taking over: the connection predates the
    /// move and is its first owner's. In flood delivery a first owner stopped for a restart cannot see it (its engine
    /// is gone), but its kernel has the connection and answers by itself: the segment goes to its MAC. Otherwise the
    /// first owner serves it (or died with it), and this node drops it.
    static func establishedInTakenBucket(_ bucket: Int, state: EngineState) -> Verdict {
        let previous = state.previousOwners[bucket]
        guard state.role.sendsStoppedOwnersTheirConnections, previous != 0, let mac = state.nodeMACs[previous], mac != 0
        else { return .drop(.handoverEstablished) }
        return .forward(mac)
    }

    /// Records a new connection (unconfirmed) or refreshes a known one (confirmed by a segment that is not a SYN);
    /// FIN marks it closing, RST ends it. An ICMP error is about a connection: it neither starts nor refreshes one.
    @inline(__always)
    static func track(_ frame: Frame, flows: inout FlowTable, now: UInt32, value: UInt16) {
        guard !frame.isICMPError else { return }
        if frame.isTCPReset {
            flows.remove(frame.key)
        } else {
            flows.insert(frame.key, now: now, value: value, confirm: !frame.isTCPSyn)
            if frame.isTCPFin { flows.markClosing(frame.key, now: now) }
        }
    }

    /// A frame a peer relayed (relay mode): the peer decided it, so it is delivered (and, in a bucket this node owns,
    /// its connection remembered), but for three cases. The port rules hold for it as for a client's own frame: a
    /// `drop` port is dropped and a `single` port delivered only by its owner (a peer never relays those elsewhere, so
    /// such a frame is a host on the segment spoofing a peer's MAC, or views that disagree for a moment). And a node
    /// that relays without having seen a connection start (a new director, or one a client reached while its ARP entry
    /// still named another node) sends an established connection of a bucket in handover to the bucket's previous
    /// owner; if that is this node and it does not have the connection, it was opened on the bucket's new owner: pass
    /// it on there.
    @inline(__always)
    static func relayed(_ frame: Frame, state: EngineState, flows: inout FlowTable, now: UInt32) -> Verdict {
        let affinity: Affinity
        switch state.mode(for: frame.key.proto, port: frame.key.serverPort) {
        case .drop: return .drop(.ruleDrop)
        case .single(let owner): return owner == state.node ? .deliver : .drop(.notOwner)
        case .balanced(let balanced): affinity = balanced
        }
        guard frame.key.proto == .tcp, !frame.isFragment else { return .deliver }
        let bucket = state.table.bucket(
            ofHash: affinity.bucketHash(of: frame.key, isFragment: false, seed: state.seed))
        let me = state.node.rawValue
        if state.table.owner(ofBucket: bucket) == state.node {
            // Remembered as a client's own frame would be: once this node releases the bucket, it still knows the
            // connections it serves there.
            track(frame, flows: &flows, now: now, value: me)
            return .deliver
        }
        if flows.value(of: frame.key, now: now) == me {
            endIfClosing(frame, flows: &flows, now: now)
            return .deliver
        }
        guard !frame.isTCPSyn, state.releasedBuckets[bucket], state.bucketMACs[bucket] != 0 else { return .deliver }
        return .forward(state.bucketMACs[bucket])
    }

    /// The director during a planned handover of a bucket (directed mode): a connection goes to the node that took
    /// its SYN, remembered in the flow table; new connections go to the new owner; segments of connections that
    /// started before the handover go to the previous owner, which still serves them.
    static func directDuringHandover(
        _ frame: Frame, owner: UInt16, previous: UInt16, state: EngineState, flows: inout FlowTable, now: UInt32
    ) -> Verdict {
        let target: UInt16
        if let known = flows.value(of: frame.key, now: now) {
            target = known
            if !frame.isTCPSyn { flows.confirm(frame.key) }
            endIfClosing(frame, flows: &flows, now: now)
        } else if frame.isTCPSyn {
            target = owner
            flows.insert(frame.key, now: now, value: owner)
        } else if previous == state.node.rawValue && owner != previous {
            // This node would know the connection had it started here before the handover (relay: the flow table
            // holds the connections a node serves; directed: the director learns its own from its kernel,
            // `KernelDeliveryPlan.ownConnectionsToLearn`). It started on the owner while another node directed: the
            // director before this one, which died or left, or (relay) the node a client's ARP entry still named.
            target = owner
        } else {
            target = previous
        }
        return target == state.node.rawValue ? .deliver : forwardOrDrop(state.nodeMACs[target] ?? 0, state: state)
    }

    /// FIN keeps a connection for the last ACKs; RST ends it at once.
    @inline(__always)
    static func endIfClosing(_ frame: Frame, flows: inout FlowTable, now: UInt32) {
        if frame.isTCPReset {
            flows.remove(frame.key)
        } else if frame.isTCPFin {
            flows.markClosing(frame.key, now: now)
        }
    }

    /// Forwards from the director, or in relay mode from any node a client still sends to (its ARP entry for the VIP
    /// not yet moved to the new director).
    @inline(__always)
    static func forwardOrDrop(_ mac: UInt64, state: EngineState) -> Verdict {
        guard state.role.forwards else { return .drop(.notOwner) }
        return mac == 0 ? .drop(.forwardFailed) : .forward(mac)
    }
}
