import ArgumentParser
import Testbed

/// `--heartbeat-ms N --dead-after K`: the heartbeat settings of every node of a virtual farm (default: lbnode's own
/// defaults), to measure other settings before they become a default.
struct HeartbeatOption: ParsableArguments {
    @Option(name: .customLong("heartbeat-ms"), help: "farm.heartbeat_interval_ms of every node (default: 4).")
    var intervalMilliseconds: Int?

    @Option(name: .customLong("dead-after"), help: "farm.dead_after of every node (default: 4).")
    var deadAfter: Int?

    func validate() throws {
        if let intervalMilliseconds, !(1...10_000).contains(intervalMilliseconds) {
            throw ValidationError("--heartbeat-ms must be from 1 to 10000")
        }
        if let deadAfter, !(2...1000).contains(deadAfter) {
            throw ValidationError("--dead-after must be from 2 to 1000")
        }
    }

    var settings: Settings { Settings(intervalMilliseconds: intervalMilliseconds, deadAfter: deadAfter) }

    /// The chosen values, for benchmarks that build their farms later.
    struct Settings: Sendable {
        var intervalMilliseconds: Int?
        var deadAfter: Int?

        func apply(to options: inout VirtualFarm.Options) {
            if let intervalMilliseconds { options.heartbeatIntervalMilliseconds = intervalMilliseconds }
            if let deadAfter { options.deadAfter = deadAfter }
        }
    }
}
