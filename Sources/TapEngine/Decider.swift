import Hashing

/// What to do with one frame.
public enum Verdict: Sendable, Equatable {
    /// Write it into the TAP: this node serves it.
    case deliver
    /// Directed mode, on the director: send it unchanged but for the destination MAC to this owner MAC.
    case forward(UInt64)
    /// Answer the ARP request or neighbour solicitation for the VIP with the virtual MAC.
    case answer
    case drop(DropReason)
}

/// The per-frame decision (DESIGN.md "Ownership"): flow table hit → deliver; bucket owned and the frame may start a
/// flow → deliver and record; otherwise drop or (director) forward. Pure but for the flow table it updates.
///
/// The flow table holds TCP connections only. They are what a planned handover must not break: the old owner keeps
/// delivering a connection it has, and the new owner takes only SYNs in a bucket it is taking over. Other protocols
/// follow the table at once, so that no datagram is ever delivered by two nodes.
public enum Decider {
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
        if state.delivery == .directed && !state.isDirector { return .drop(.notDirector) }
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
        if tracked && flows.lookup(frame.key, now: now) {
            if frame.isTCPReset {
                flows.remove(frame.key)
            } else if frame.isTCPFin {
                flows.markClosing(frame.key, now: now)
            }
            return .deliver
        }
        let bucket = state.table.bucket(ofHash: affinity.bucketHash(of: frame.key, isFragment: frame.isFragment,
            seed: state.seed))
        guard let owner = state.table.owner(ofBucket: bucket) else { return .drop(.noOwner) }
        guard owner == state.node else { return forwardOrDrop(state.bucketMACs[bucket], state: state) }
        if tracked {
            if state.handoverBuckets[bucket] && !frame.isTCPSyn { return .drop(.handoverEstablished) }
            if !frame.isTCPReset { flows.insert(frame.key, now: now) }
        }
        return .deliver
    }

    @inline(__always)
    static func forwardOrDrop(_ mac: UInt64, state: EngineState) -> Verdict {
        guard state.delivery == .directed && state.isDirector else { return .drop(.notOwner) }
        return mac == 0 ? .drop(.forwardFailed) : .forward(mac)
    }
}
