import CNetlink
import Glibc

extension NetlinkSocket {
    /// The interface called `name`, or `nil` when there is none. The corresponding C function is
    /// `rtnl_link_get_kernel`.
    public func link(named name: String) throws(NetlinkError) -> Link? {
        var result: OpaquePointer?
        let status = rtnl_link_get_kernel(handle, 0, name, &result)
        if status == -NLE_OBJ_NOTFOUND || status == -NLE_NODEV { return nil }
        try check("read interface \(name)", status)
        guard let result else { return nil }
        defer { rtnl_link_put(result) }
        return Link(result)
    }

    /// The interface called `name`, or an error that names it.
    public func requireLink(named name: String) throws(NetlinkError) -> Link {
        guard let link = try link(named: name) else {
            throw NetlinkError(operation: "find interface \(name)", errno: ENODEV)
        }
        return link
    }

    /// Every interface of the socket's namespace. The corresponding C function is `rtnl_link_alloc_cache`.
    public func links() throws(NetlinkError) -> [Link] {
        var cache: OpaquePointer?
        try check("list interfaces", rtnl_link_alloc_cache(handle, AF_UNSPEC, &cache))
        defer { nl_cache_free(cache) }
        var result: [Link] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            result.append(Link(current))
            object = nl_cache_get_next(current)
        }
        return result
    }

    /// Applies `change` to the interface `name`. The corresponding C function is `rtnl_link_change`.
    public func changeLink(named name: String, _ change: LinkChange) throws(NetlinkError) {
        var original: OpaquePointer?
        try check("read interface \(name)", rtnl_link_get_kernel(handle, 0, name, &original))
        defer { rtnl_link_put(original) }
        let request = rtnl_link_alloc()
        defer { rtnl_link_put(request) }
        if let up = change.up {
            up ? rtnl_link_set_flags(request, Link.upFlag) : rtnl_link_unset_flags(request, Link.upFlag)
        }
        if let noARP = change.noARP {
            noARP ? rtnl_link_set_flags(request, Link.noARPFlag) : rtnl_link_unset_flags(request, Link.noARPFlag)
        }
        var mac: NetlinkAddress?
        if let address = change.mac {
            mac = NetlinkAddress(address)
            rtnl_link_set_addr(request, mac!.handle)
        }
        if let mtu = change.mtu { rtnl_link_set_mtu(request, mtu) }
        if let master = change.masterIndex { rtnl_link_set_master(request, master) }
        try check("change interface \(name)", rtnl_link_change(handle, original, request, 0))
        withExtendedLifetime(mac) {}
    }

    /// Deletes the interface `name` (a veth takes its peer with it). The corresponding C function is
    /// `rtnl_link_delete`.
    public func deleteLink(named name: String) throws(NetlinkError) {
        let request = rtnl_link_alloc()
        defer { rtnl_link_put(request) }
        rtnl_link_set_name(request, name)
        try check("delete interface \(name)", rtnl_link_delete(handle, request))
    }

    /// Creates a veth pair `name` ⇄ `peer` in the socket's namespace.
    public func addVethPair(_ name: String, peer: String) throws(NetlinkError) {
        guard let request = rtnl_link_veth_alloc() else {
            throw NetlinkError(operation: "allocate veth \(name)", libnlCode: -NLE_NOMEM)
        }
        defer { rtnl_link_put(request) }
        rtnl_link_set_name(request, name)
        rtnl_link_set_name(rtnl_link_veth_get_peer(request), peer)
        try check("create veth pair \(name)/\(peer)", rtnl_link_add(handle, request, NLM_F_CREATE | NLM_F_EXCL))
    }

    /// Creates the 802.1Q interface `name` for VLAN `id` on `parent` (`ip link add link PARENT name NAME type vlan
    /// id ID`). The corresponding C functions are `rtnl_link_vlan_alloc`, `rtnl_link_vlan_set_id` and `rtnl_link_add`.
    public func addVLAN(_ name: String, on parent: String, id: UInt16) throws(NetlinkError) {
        let parentIndex = try requireLink(named: parent).index
        guard let request = rtnl_link_vlan_alloc() else {
            throw NetlinkError(operation: "allocate VLAN \(name)", libnlCode: -NLE_NOMEM)
        }
        defer { rtnl_link_put(request) }
        rtnl_link_set_name(request, name)
        rtnl_link_set_link(request, parentIndex)
        try check("set VLAN id \(id) on \(name)", rtnl_link_vlan_set_id(request, id))
        try check("create VLAN \(name) on \(parent)", rtnl_link_add(handle, request, NLM_F_CREATE | NLM_F_EXCL))
    }

    /// Creates a Linux bridge `name` (MAC learning on, STP off, as the kernel defaults).
    public func addBridge(_ name: String) throws(NetlinkError) {
        let request = rtnl_link_alloc()
        defer { rtnl_link_put(request) }
        rtnl_link_set_name(request, name)
        try check("set type of \(name)", rtnl_link_set_type(request, "bridge"))
        try check("create bridge \(name)", rtnl_link_add(handle, request, NLM_F_CREATE | NLM_F_EXCL))
    }

    /// Moves the interface `name` into the namespace open at `namespaceFD`, renaming it to `newName` if given.
    public func moveLink(named name: String, toNamespace namespaceFD: Int32, newName: String? = nil)
        throws(NetlinkError)
    {
        var original: OpaquePointer?
        try check("read interface \(name)", rtnl_link_get_kernel(handle, 0, name, &original))
        defer { rtnl_link_put(original) }
        let request = rtnl_link_alloc()
        defer { rtnl_link_put(request) }
        rtnl_link_set_ns_fd(request, namespaceFD)
        if let newName { rtnl_link_set_name(request, newName) }
        try check("move interface \(name) to another namespace", rtnl_link_change(handle, original, request, 0))
    }
}

extension NetlinkSocket {
    /// Turns unknown-unicast flooding on or off on the bridge port `name` (`bridge link set dev NAME flood on|off`).
    /// With it off the port receives a unicast frame only when the bridge has learnt its destination there, as on a
    /// switch that never floods.
    public func setBridgePortFlooding(_ name: String, enabled: Bool) throws(NetlinkError) {
        try setBridgePortFlag(UInt32(RTNL_BRIDGE_UNICAST_FLOOD.rawValue), named: "flooding", on: name, enabled: enabled)
    }

    /// Turns address learning on or off on the bridge port `name` (`bridge link set dev NAME learning on|off`). With
    /// it off, and the port's learnt addresses forgotten (`forgetBridgeEntry`), the bridge floods every frame to the
    /// host behind the port to all its ports.
    public func setBridgePortLearning(_ name: String, enabled: Bool) throws(NetlinkError) {
        try setBridgePortFlag(UInt32(RTNL_BRIDGE_LEARNING.rawValue), named: "learning", on: name, enabled: enabled)
    }

    /// The corresponding C functions are `rtnl_link_bridge_set_flags` and `rtnl_link_change` on an AF_BRIDGE link.
    private func setBridgePortFlag(_ flag: UInt32, named flagName: String, on name: String, enabled: Bool)
        throws(NetlinkError)
    {
        // libnl asserts that the original and the change have one family, so the original is an AF_BRIDGE stub.
        let original = rtnl_link_alloc()
        defer { rtnl_link_put(original) }
        rtnl_link_set_ifindex(original, try requireLink(named: name).index)
        rtnl_link_set_family(original, AF_BRIDGE)
        let request = rtnl_link_alloc()
        defer { rtnl_link_put(request) }
        rtnl_link_set_family(request, AF_BRIDGE)
        let operation = "set \(flagName) on bridge port \(name)"
        try check(
            operation, enabled ? rtnl_link_bridge_set_flags(request, flag) : rtnl_link_bridge_unset_flags(request, flag)
        )
        try check(operation, rtnl_link_change(handle, original, request, 0))
    }

    /// Makes the bridge forget that `mac` is behind its port `name` (`bridge fdb del MAC dev NAME master`); nothing
    /// to do when it had not learnt it. The corresponding C function is `rtnl_neigh_delete` on an AF_BRIDGE entry.
    public func forgetBridgeEntry(_ mac: HardwareAddress, onPort name: String) throws(NetlinkError) {
        let entry = rtnl_neigh_alloc()
        defer { rtnl_neigh_put(entry) }
        rtnl_neigh_set_family(entry, AF_BRIDGE)
        rtnl_neigh_set_ifindex(entry, try requireLink(named: name).index)
        let address = NetlinkAddress(mac)
        rtnl_neigh_set_lladdr(entry, address.handle)
        rtnl_neigh_set_flags(entry, UInt32(NTF_MASTER))
        let result = rtnl_neigh_delete(handle, entry, 0)
        if result == -NLE_OBJ_NOTFOUND { return }
        try check("forget \(mac) on bridge port \(name)", result)
    }
}
