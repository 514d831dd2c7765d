import Foundation

/// The kernel's own path for the VIP closed on the farm interface, for `relay` delivery: there the director receives
/// client frames at its NIC's own MAC, and the kernel would take them as any frame for a local address (the VIP is
/// on the TAP, and Linux accepts it on every interface), answering beside the engine. An nftables table in the
/// `netdev` family drops IP packets for the VIP at the interface's ingress hook; packet sockets, the engine's ring
/// among them, see every frame before that hook, so the engine still gets them.
///
/// Made with the `nft` program (Debian package nftables), one table per TAP, so `teardown` removes exactly it.
public struct IngressDrop: Codable, Equatable, Sendable {
    public var interface: String
    public var vip: IPPrefix
    /// `vipfarm_<tap>`.
    public var table: String

    public init(interface: String, vip: IPPrefix, tapName: String) {
        self.interface = interface
        self.vip = vip
        table = "vipfarm_\(tapName)"
    }

    /// The table's text for `nft -f -`.
    var ruleset: String {
        """
        table netdev \(table) {
          chain ingress {
            type filter hook ingress device "\(interface)" priority -500; policy accept;
            \(vip.isIPv4 ? "ip" : "ip6") daddr \(vip.address) drop
          }
        }
        """
    }

    /// Whether the table is in the kernel (the current network namespace); false where `nft` is not installed.
    func isInstalled() throws(NetlinkError) -> Bool {
        guard NFTProgram.path != nil else { return false }
        return try NFTProgram.run(["list", "table", "netdev", table]) == nil
    }

    func install() throws(NetlinkError) {
        guard NFTProgram.path != nil else {
            throw NetlinkError(
                operation: "drop \(vip.address) at \(interface)'s ingress: relay delivery needs the nft program "
                    + "(apt-get install nftables)", errno: ENOENT)
        }
        if let failure = try NFTProgram.run(["-f", "-"], input: ruleset) {
            throw NetlinkError(
                operation: "add nftables table \(table) (drop \(vip.address) at \(interface)'s ingress): \(failure)",
                errno: EINVAL)
        }
    }

    func remove() throws(NetlinkError) {
        if let failure = try NFTProgram.run(["delete", "table", "netdev", table]), !failure.contains("No such file") {
            throw NetlinkError(operation: "remove nftables table \(table): \(failure)", errno: EINVAL)
        }
    }
}
