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

extension NetlinkSocket {
    /// Deletes the entries of the interface `linkIndex` that are being resolved or have failed, so that the next
    /// packet to each address asks for it at once instead of waiting for the entry's next probe (up to a second:
    /// `retrans_time`). After a cable comes back, the entries of every address a server tried to reach meanwhile sit
    /// in that cycle. Returns how many went. The corresponding C function is `rtnl_neigh_delete`.
    @discardableResult
    public func removeUnresolvedNeighbours(onLink linkIndex: Int32) throws(NetlinkError) -> Int {
        var cache: OpaquePointer?
        try check("list neighbours", rtnl_neigh_alloc_cache(handle, &cache))
        defer { nl_cache_free(cache) }
        var removed = 0
        var object = nl_cache_get_first(cache)
        while let current = object {
            if rtnl_neigh_get_ifindex(current) == linkIndex,
                NeighbourState(kernelState: rtnl_neigh_get_state(current)) != .resolved,
                rtnl_neigh_delete(handle, current, 0) >= 0
            {
                removed += 1
            }
            object = nl_cache_get_next(current)
        }
        return removed
    }
}
