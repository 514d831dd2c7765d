import ArgumentParser
import RouteSetup
import TapEngine
import Testbed

/// `lbbench`: the vipfarm benchmark suite.
@main
struct LBBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lbbench",
        abstract: "Measures vipfarm: hashing, packets per second, failover time.",
        discussion: """
            Every subcommand prints a table, or JSON with --json. Figures are medians of repeated runs; compare them \
            with references measured in the same run, since shared machines are noisy. share/doc/vipfarm/benchmarks.md explains \
            the method.
            """,
        version: "lbbench 0.1.0 (\(PacketLibrary.version); libnl \(NetlinkLibrary.version))",
        subcommands: [
            HashCommand.self, FramesCommand.self, EngineCommand.self, ThroughputCommand.self, FailoverCommand.self,
            AppsCommand.self, ScenariosCommand.self, TestbedCommand.self,
            SteadyCommand.self, ChaosCommand.self, DemoCommand.self, ServeCommand.self,
        ]
    )

    /// Testbeds come down on Ctrl-C too; then the chosen subcommand runs.
    static func main() {
        TestbedRegistry.removeOnInterrupt()
        do {
            var command = try parseAsRoot()
            try command.run()
            TestbedRegistry.yieldToInterrupt()
        } catch {
            TestbedRegistry.yieldToInterrupt()
            exit(withError: error)
        }
    }
}
