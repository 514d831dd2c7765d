import Foundation
import RouteSetup

/// The child processes of a testbed (lbnode, keepalived), each started in a host's namespace and ended by its PID;
/// registered so that Ctrl-C ends them too.
public final class ChildProcesses {
    /// By host number.
    private(set) var running: [Int: Process] = [:]

    /// Starts `executable` in `namespace` (a process started from a thread inherits the thread's namespace), its
    /// standard output and error appended to `log`.
    public func start(
        _ number: Int, in namespace: NetworkNamespace, executable: String, arguments: [String], log: String,
        environment: [String: String] = [:]
    ) throws {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let result: Result<Process, Error> = try namespace.run { () throws(NetlinkError) in
            Result {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                if !environment.isEmpty {
                    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                }
                process.standardError = FileHandle(forWritingAtPath: log)
                process.standardOutput = FileHandle(forWritingAtPath: log)
                try process.run()
                return process
            }
        }
        let process = try result.get()
        TestbedRegistry.register(child: process.processIdentifier)
        running[number] = process
    }

    /// The PIDs of the processes that run, by host number.
    public var runningIdentifiers: [Int: pid_t] {
        running.filter { $0.value.isRunning }.mapValues(\.processIdentifier)
    }

    /// Sends `signal` to host `number`'s process, if it runs.
    public func signal(_ number: Int, _ signal: Int32) {
        guard let process = running[number], process.isRunning else { return }
        kill(process.processIdentifier, signal)
    }

    public func waitForExit(_ number: Int) {
        running[number]?.waitUntilExit()
    }

    /// Host `number`'s process's exit status, once it has exited.
    public func exitStatus(_ number: Int) -> Int32? {
        guard let process = running[number], !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// Ends every process with `signal` (a frozen one is thawed first) and waits for it. Safe to call twice.
    public func stopAll(with signal: Int32) {
        for process in running.values where process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
        }
        for process in running.values { TestbedRegistry.unregister(child: process.processIdentifier) }
        running = [:]
    }
}
