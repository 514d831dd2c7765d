import ArgumentParser
import RouteSetup

/// The options `setup` and `teardown` share.
struct SetupOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The NIC that faces the clients, e.g. eth0.")
    var interface: String

    @Option(help: ArgumentHelp("The virtual IP the farm shares (IPv4 or IPv6).", valueName: "address"))
    var vip: String

    @Option(help: "The TAP device that holds the VIP.")
    var tap: String = ServerSetup.defaultTapName

    @Option(help: "The farm's name: it seeds the hash and derives the virtual MAC. Use the same on every node.")
    var farm: String = "vipfarm"

    @Option(help: "Where the values that setup overwrote are saved for teardown.")
    var stateDir: String = ServerSetup.defaultStateDirectory

    @Flag(
        help: """
            Relay delivery: the TAP takes the interface's MAC, and the kernel's own path for the VIP on the \
            interface is closed (an nftables ingress drop).
            """)
    var relay = false

    @Flag(help: "Print the plan and change nothing.")
    var dryRun = false

    func validate() throws {
        guard let prefix = IPPrefix(vip), prefix.prefixLength == prefix.bytes.count * 8 else {
            throw ValidationError("--vip '\(vip)' is not an IP address; give one address, e.g. 198.18.0.100")
        }
        guard !farm.isEmpty else { throw ValidationError("--farm must not be empty") }
    }

    /// The setup these options describe (valid after `validate`); relay reads the interface's MAC (a missing
    /// interface is reported by the setup itself).
    var serverSetup: ServerSetup {
        let prefix = IPPrefix(vip)!
        var mac = FarmIdentity.virtualMAC(farm: farm, vip: prefix)
        if relay, let own = (try? NetlinkSocket().requireLink(named: interface))?.mac { mac = own }
        return ServerSetup(interface: interface, vip: prefix, tapName: tap, virtualMAC: mac, relay: relay)
    }

    /// Refuses to start a change without CAP_NET_ADMIN (a dry run only reads).
    func requirePrivileges(for command: String) throws {
        guard dryRun || Privileges.hasNetAdmin else {
            throw CommandFailure(
                "\(command) needs CAP_NET_ADMIN: run it as root (or add --dry-run to see the plan); "
                    + "nothing was changed")
        }
    }
}

/// A one-line error that `lbnode` prints as `lbnode: <message>` before exiting with status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
