import Dispatch
import Foundation
import Synchronization

/// The testbeds this process has up, so that an interrupt (Ctrl-C, SIGTERM) removes them before the process exits:
/// `deinit` does not run when a signal ends a process.
public enum TestbedRegistry {
    private static let live = Mutex<Set<String>>([])
    private nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    /// Child processes (lbnode) running in the testbeds, ended by PID before the testbeds go.
    private static let children = Mutex<Set<pid_t>>([])

    /// Set when a signal started the clean-up: the main thread must not exit first (its work fails as the
    /// namespaces go), or the exit status would be that failure's instead of 128 + the signal.
    private static let interrupted = Mutex(false)

    /// Blocks for good when an interrupt is being handled: its handler ends the process.
    public static func yieldToInterrupt() {
        while interrupted.withLock({ $0 }) { sleep(1) }
    }

    public static func register(_ id: String) { live.withLock { _ = $0.insert(id) } }
    public static func unregister(_ id: String) { live.withLock { _ = $0.remove(id) } }
    public static func register(child: pid_t) { children.withLock { _ = $0.insert(child) } }
    public static func unregister(child: pid_t) { children.withLock { _ = $0.remove(child) } }

    /// On SIGINT, SIGTERM or SIGHUP: remove every registered testbed, say so, and exit with 128 + the signal.
    public static func removeOnInterrupt() {
        for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                interrupted.withLock { $0 = true }
                for child in children.withLock({ $0 }) { kill(child, SIGKILL) }
                let ids = live.withLock { $0 }
                let removed = ids.flatMap { VirtualNetwork.remove(id: $0) }
                FileHandle.standardError.write(
                    Data(
                        "lbbench: interrupted; removed \(removed.count) testbed namespaces\n".utf8))
                exit(128 + signalNumber)
            }
            source.resume()
            sources.append(source)
        }
    }
}
