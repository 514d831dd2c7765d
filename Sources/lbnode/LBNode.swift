import ArgumentParser
import Foundation
import RouteSetup
import TapEngine

#if !FUZZING  // a fuzzing build's entry is libFuzzer's (FuzzTarget.swift)
@main
extension LBNode {}
#endif

/// `lbnode`: the vipfarm daemon that runs on every server of a farm.
struct LBNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lbnode",
        abstract: "The vipfarm node: shares a virtual IP with the other servers of a farm.",
        discussion: """
            Every server of a farm runs lbnode. It keeps the clients whose hash bucket it owns, injects their frames \
            into a TAP device that holds the VIP, and heartbeats its peers so that the survivors take over the \
            buckets of a server that dies. See lbnode.yaml(5) for the configuration and the operator's guide in share/doc/vipfarm/operations.md (under /usr or /usr/local).
            """,
        version: versionText,
        subcommands: [
            RunCommand.self, StatusCommand.self, DrainCommand.self, UndrainCommand.self, CheckCommand.self, SetupCommand.self,
            TeardownCommand.self, KeygenCommand.self, ProbeCommand.self,
        ]
    )

    /// Runs the command, printing a `CommandFailure` as one line on stderr with exit status 1.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as CommandFailure {
            printError("lbnode: \(failure)")
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }

    /// The version line, with the C libraries the binary runs with (the first thing to ask for in a bug report).
    static var versionText: String {
        "lbnode 0.1.0 (\(PacketLibrary.version); libnl \(NetlinkLibrary.version))"
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
