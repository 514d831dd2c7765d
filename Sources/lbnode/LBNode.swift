import ArgumentParser
import RouteSetup
import TapEngine

/// `lbnode`: the vipfarm daemon that runs on every server of a farm.
@main
struct LBNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lbnode",
        abstract: "The vipfarm node: shares a virtual IP with the other servers of a farm.",
        discussion: """
            Every server of a farm runs lbnode. It keeps the clients whose hash bucket it owns, injects their frames \
            into a TAP device that holds the VIP, and heartbeats its peers so that the survivors take over the \
            buckets of a server that dies. See docs/ for the operator's guide.
            """,
        version: versionText
    )

    /// The version line, with the C libraries the binary runs with (the first thing to ask for in a bug report).
    static var versionText: String {
        "lbnode 0.1.0 (\(PacketLibrary.version); libnl \(NetlinkLibrary.version))"
    }
}
