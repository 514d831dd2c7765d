import ArgumentParser
import Testbed

/// `--engine-threads N`: `node.engine_threads` of every node of a virtual farm (default: the nodes' own, `auto`,
/// which is 1 on the testbed's one-queue veths).
struct EngineThreadsOption: ParsableArguments {
    @Option(name: .customLong("engine-threads"), help: "node.engine_threads of every node (1-64; default: auto).")
    var value: Int?

    func validate() throws {
        if let value, !(1...64).contains(value) { throw ValidationError("--engine-threads must be from 1 to 64") }
    }

    func apply(to options: inout VirtualFarm.Options) {
        if let value { options.engineThreads = value }
    }
}
