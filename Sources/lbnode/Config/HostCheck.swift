import RouteSetup

/// A configuration checked against the host it is to run on (`lbnode check`, and `lbnode run` before it changes
/// anything): the interface exists, `node.address` is one of its addresses, the VIP is no address of this host and lies
/// in a subnet of the interface. A configuration can be valid and still describe another machine (a copied file, a
/// renamed NIC); found here, that costs a line of output instead of a half-configured host.
struct HostCheck {
    let config: FarmConfig

    /// What does not fit: `errors` refuse the configuration, `warnings` are printed.
    struct Findings {
        var errors: [ConfigError] = []
        var warnings: [ConfigError] = []
    }

    /// Checks the host of the calling thread's network namespace.
    func findings() throws(NetlinkError) -> Findings {
        let netlink = try NetlinkSocket()
        let links = try netlink.links()
        let addresses = try netlink.addresses()
        var findings = Findings()
        let source = config.source
        let interface = config.node.interface
        guard let link = links.first(where: { $0.name == interface }) else {
            let names = links.map(\.name).filter { $0 != config.node.tap }.sorted().joined(separator: ", ")
            findings.errors.append(
                source.error(
                    "node.interface",
                    "no interface '\(interface)' on this host (it has \(names)): name the NIC that faces the clients"))
            return findings
        }
        let own = addresses.filter { $0.linkIndex == link.index }.map(\.prefix)
        let ownText = own.isEmpty ? "no address" : own.map(\.description).joined(separator: ", ")
        let address = config.node.address.host
        if !own.contains(where: { $0.host == address }) {
            let elsewhere = addresses.first { $0.prefix.host == address }
                .flatMap { found in links.first { $0.index == found.linkIndex }?.name }
            findings.errors.append(
                source.error(
                    "node.address",
                    "\(address.address) is not an address of \(interface) (which has \(ownText))"
                        + (elsewhere.map { "; it is on \($0): set node.interface to \($0)" }
                            ?? ": set node.address to the address of \(interface) the peers reach this node at")))
        }
        let vip = config.farm.vip.host
        let tapIndex = links.first { $0.name == config.node.tap }?.index
        if let holder = addresses.first(where: { $0.prefix.host == vip && $0.linkIndex != tapIndex }) {
            let name = links.first { $0.index == holder.linkIndex }?.name ?? "interface \(holder.linkIndex)"
            findings.errors.append(
                source.error(
                    "farm.vip",
                    "\(vip.address) is already an address of \(name) on this host: the VIP must be an address no "
                        + "server holds (lbnode puts it on \(config.node.tap)); pick a free one"))
        }
        let subnets = own.filter { $0.isIPv4 == vip.isIPv4 && $0.prefixLength < $0.bytes.count * 8 }
        if !subnets.isEmpty && !subnets.contains(where: { $0.contains(vip) }) {
            findings.warnings.append(
                source.error(
                    "farm.vip",
                    "\(vip.address) is outside \(interface)'s subnets (\(subnets.map(\.description).joined(separator: ", "))): "
                        + "clients and routers on the segment ARP only for on-link addresses, so it works only if "
                        + "your router routes the VIP to this segment"))
        }
        return findings
    }
}
