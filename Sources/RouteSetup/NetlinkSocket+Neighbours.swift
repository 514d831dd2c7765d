import CNetlink
import Glibc

/// What the kernel knows of a neighbour's link-layer address (its `NUD_*` state).
public enum NeighbourState: String, Sendable, Equatable {
    /// Resolved (reachable, stale, being confirmed, or set by hand).
    case resolved
    /// Being resolved: ARP (or neighbour solicitation) sent, no answer yet.
    case incomplete
    /// Resolution failed: nothing answered.
    case failed

    /// The state of a `NUD_*` bit set.
    init(kernelState: Int32) {
        if kernelState & Int32(NUD_FAILED) != 0 {
            self = .failed
        } else if kernelState & Int32(NUD_INCOMPLETE) != 0 {
            self = .incomplete
        } else {
            self = .resolved
        }
    }
}

extension NetlinkSocket {
    /// The neighbour entries of the interface `linkIndex`, by address (host prefixes). The corresponding C function
    /// is `rtnl_neigh_alloc_cache`.
    public func neighbours(onLink linkIndex: Int32) throws(NetlinkError) -> [IPPrefix: NeighbourState] {
        var cache: OpaquePointer?
        try check("list neighbours", rtnl_neigh_alloc_cache(handle, &cache))
        defer { nl_cache_free(cache) }
        var result: [IPPrefix: NeighbourState] = [:]
        var object = nl_cache_get_first(cache)
        while let current = object {
            if rtnl_neigh_get_ifindex(current) == linkIndex, let bytes = NetlinkAddress.bytes(of: rtnl_neigh_get_dst(current)),
                let address = IPPrefix(bytes: bytes, prefixLength: bytes.count * 8)
            {
                result[address] = NeighbourState(kernelState: rtnl_neigh_get_state(current))
            }
            object = nl_cache_get_next(current)
        }
        return result
    }
}
