import CNetlink
import Glibc

/// A unicast route through an interface, in a routing table.
public struct Route: Hashable, Sendable {
    public var destination: IPPrefix
    public var linkIndex: Int32
    public var gateway: IPPrefix?
    /// The routing table (254 = main).
    public var table: UInt32

    public init(destination: IPPrefix, linkIndex: Int32, gateway: IPPrefix? = nil, table: UInt32 = 254) {
        self.destination = destination
        self.linkIndex = linkIndex
        self.gateway = gateway
        self.table = table
    }
}

/// A policy rule: packets from `source` look up `table`, at `priority`.
public struct PolicyRule: Hashable, Sendable {
    public var priority: UInt32
    public var source: IPPrefix
    public var table: UInt32

    public init(priority: UInt32, source: IPPrefix, table: UInt32) {
        self.priority = priority
        self.source = source
        self.table = table
    }
}

extension NetlinkSocket {
    /// Adds `route`. The corresponding C function is `rtnl_route_add`.
    public func addRoute(_ route: Route) throws(NetlinkError) {
        try withRouteRequest(route) { (request) throws(NetlinkError) in
            try check(
                "add route \(route.destination) table \(route.table)", rtnl_route_add(handle, request, NLM_F_EXCL))
        }
    }

    /// Removes `route`. The corresponding C function is `rtnl_route_delete`.
    public func removeRoute(_ route: Route) throws(NetlinkError) {
        try withRouteRequest(route) { (request) throws(NetlinkError) in
            try check("remove route \(route.destination) table \(route.table)", rtnl_route_delete(handle, request, 0))
        }
    }

    private func withRouteRequest(_ route: Route, _ body: (OpaquePointer) throws(NetlinkError) -> Void)
        throws(NetlinkError)
    {
        let request = rtnl_route_alloc()!
        defer { rtnl_route_put(request) }
        let destination = NetlinkAddress(route.destination)
        _ = rtnl_route_set_family(request, UInt8(route.destination.family))
        rtnl_route_set_table(request, route.table)
        _ = rtnl_route_set_dst(request, destination.handle)
        let hop = rtnl_route_nh_alloc()!
        rtnl_route_nh_set_ifindex(hop, route.linkIndex)
        let gateway = route.gateway.map(NetlinkAddress.init)
        if let gateway { rtnl_route_nh_set_gateway(hop, gateway.handle) }
        rtnl_route_add_nexthop(request, hop)  // the route now owns the hop
        try body(request)
        withExtendedLifetime((destination, gateway)) {}
    }

    /// Adds a policy rule. The corresponding C function is `rtnl_rule_add`.
    public func addRule(_ rule: PolicyRule) throws(NetlinkError) {
        try withRuleRequest(rule) { (request) throws(NetlinkError) in
            try check("add rule from \(rule.source) table \(rule.table)", rtnl_rule_add(handle, request, NLM_F_EXCL))
        }
    }

    /// Removes a policy rule. The corresponding C function is `rtnl_rule_delete`.
    public func removeRule(_ rule: PolicyRule) throws(NetlinkError) {
        try withRuleRequest(rule) { (request) throws(NetlinkError) in
            try check("remove rule from \(rule.source) table \(rule.table)", rtnl_rule_delete(handle, request, 0))
        }
    }

    private func withRuleRequest(_ rule: PolicyRule, _ body: (OpaquePointer) throws(NetlinkError) -> Void)
        throws(NetlinkError)
    {
        let request = rtnl_rule_alloc()!
        defer { rtnl_rule_put(request) }
        let source = NetlinkAddress(rule.source)
        rtnl_rule_set_family(request, rule.source.family)
        rtnl_rule_set_prio(request, rule.priority)
        rtnl_rule_set_table(request, rule.table)
        rtnl_rule_set_action(request, UInt8(FR_ACT_TO_TBL))
        _ = rtnl_rule_set_src(request, source.handle)
        try body(request)
        withExtendedLifetime(source) {}
    }

    /// Adds a permanent neighbour entry `address` → `mac` on `linkIndex`. The corresponding C function is
    /// `rtnl_neigh_add`.
    public func addNeighbour(_ address: IPPrefix, mac: HardwareAddress, linkIndex: Int32) throws(NetlinkError) {
        try withNeighbourRequest(address, mac: mac, linkIndex: linkIndex) { (request) throws(NetlinkError) in
            rtnl_neigh_set_state(request, Int32(NUD_PERMANENT))
            try check("add neighbour \(address.address)", rtnl_neigh_add(handle, request, NLM_F_CREATE | NLM_F_EXCL))
        }
    }

    /// Removes the neighbour entry of `address` on `linkIndex`. The corresponding C function is `rtnl_neigh_delete`.
    public func removeNeighbour(_ address: IPPrefix, linkIndex: Int32) throws(NetlinkError) {
        try withNeighbourRequest(address, mac: nil, linkIndex: linkIndex) { (request) throws(NetlinkError) in
            try check("remove neighbour \(address.address)", rtnl_neigh_delete(handle, request, 0))
        }
    }

    private func withNeighbourRequest(
        _ address: IPPrefix, mac: HardwareAddress?, linkIndex: Int32,
        _ body: (OpaquePointer) throws(NetlinkError) -> Void
    ) throws(NetlinkError) {
        let request = rtnl_neigh_alloc()!
        defer { rtnl_neigh_put(request) }
        let destination = NetlinkAddress(address.host)
        let lladdr = mac.map(NetlinkAddress.init)
        rtnl_neigh_set_ifindex(request, linkIndex)
        rtnl_neigh_set_family(request, address.family)
        _ = rtnl_neigh_set_dst(request, destination.handle)
        if let lladdr { rtnl_neigh_set_lladdr(request, lladdr.handle) }
        try body(request)
        withExtendedLifetime((destination, lladdr)) {}
    }
}
