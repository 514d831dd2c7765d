import CNetlink
import Glibc

/// An address on an interface.
public struct InterfaceAddress: Hashable, Sendable {
    public let linkIndex: Int32
    public let prefix: IPPrefix
}

extension NetlinkSocket {
    /// Every address of every interface. The corresponding C function is `rtnl_addr_alloc_cache`.
    public func addresses() throws(NetlinkError) -> [InterfaceAddress] {
        var cache: OpaquePointer?
        try check("list addresses", rtnl_addr_alloc_cache(handle, &cache))
        defer { nl_cache_free(cache) }
        var result: [InterfaceAddress] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            let local = rtnl_addr_get_local(current)
            if let bytes = NetlinkAddress.bytes(of: local),
                let prefix = IPPrefix(bytes: bytes, prefixLength: Int(rtnl_addr_get_prefixlen(current)))
            {
                result.append(InterfaceAddress(linkIndex: rtnl_addr_get_ifindex(current), prefix: prefix))
            }
            object = nl_cache_get_next(current)
        }
        return result
    }

    /// The addresses of one interface.
    public func addresses(onLink index: Int32) throws(NetlinkError) -> [IPPrefix] {
        try addresses().filter { $0.linkIndex == index }.map(\.prefix)
    }

    /// Adds `prefix` to the interface `linkIndex` (IPv6 without duplicate address detection, since a VIP is
    /// deliberately on many hosts). The corresponding C function is `rtnl_addr_add`.
    public func addAddress(_ prefix: IPPrefix, toLink linkIndex: Int32) throws(NetlinkError) {
        let request = try addressRequest(prefix, linkIndex: linkIndex)
        defer { rtnl_addr_put(request) }
        if !prefix.isIPv4 { rtnl_addr_set_flags(request, UInt32(IFA_F_NODAD)) }
        try check("add address \(prefix) to interface \(linkIndex)", rtnl_addr_add(handle, request, NLM_F_EXCL))
    }

    /// Removes `prefix` from the interface `linkIndex`. The corresponding C function is `rtnl_addr_delete`.
    public func removeAddress(_ prefix: IPPrefix, fromLink linkIndex: Int32) throws(NetlinkError) {
        let request = try addressRequest(prefix, linkIndex: linkIndex)
        defer { rtnl_addr_put(request) }
        try check("remove address \(prefix) from interface \(linkIndex)", rtnl_addr_delete(handle, request, 0))
    }

    private func addressRequest(_ prefix: IPPrefix, linkIndex: Int32) throws(NetlinkError) -> OpaquePointer {
        guard let request = rtnl_addr_alloc() else {
            throw NetlinkError(operation: "allocate address \(prefix)", libnlCode: -NLE_NOMEM)
        }
        let local = NetlinkAddress(prefix)
        rtnl_addr_set_ifindex(request, linkIndex)
        rtnl_addr_set_family(request, prefix.family)
        rtnl_addr_set_prefixlen(request, Int32(prefix.prefixLength))
        let status = rtnl_addr_set_local(request, local.handle)
        guard status >= 0 else {
            rtnl_addr_put(request)
            throw NetlinkError(operation: "set address \(prefix)", libnlCode: status)
        }
        return request
    }
}
