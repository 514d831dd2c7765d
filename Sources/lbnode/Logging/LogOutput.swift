import Foundation
import Synchronization

/// Where lbnode's log lines go: a thread of their own writes them to standard error, so that a slow reader (a journald
/// that lags, a full pipe, a terminal on a slow link) never holds up the heartbeat loop. Lines wait in a bounded
/// queue; when it is full a line is dropped and counted, and the writer says how many it lost once it catches up.
final class LogOutput: Sendable {
    /// Lines that may wait; a burst of view changes is a few dozen.
    static let capacity = 4096

    private struct Queue {
        var lines: [String] = []
        var dropped = 0
        /// Lines queued or being written.
        var unwritten = 0
    }
    private let queue = Mutex(Queue())
    private let wake = DispatchSemaphore(value: 0)
    private let write: @Sendable (String) -> Void

    /// - Parameter write: writes one line (with its newline); blocking is fine, it runs on the writer thread.
    init(write: @escaping @Sendable (String) -> Void = LogOutput.standardError) {
        self.write = write
        Thread.detachNewThread { [self] in run() }
    }

    /// The process's one output (it lives as long as the process).
    static let shared = LogOutput()

    @Sendable static func standardError(_ line: String) {
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Queues a line (with its newline) without waiting.
    func enqueue(_ line: String) {
        let queued = queue.withLock { queue in
            guard queue.lines.count < Self.capacity else {
                queue.dropped += 1
                return false
            }
            queue.lines.append(line)
            queue.unwritten += 1
            return true
        }
        if queued { wake.signal() }
    }

    /// Waits (up to `seconds`) until every queued line is written: before the process exits.
    func flush(seconds: Double = 2) {
        let deadline = Date().addingTimeInterval(seconds)
        while queue.withLock({ $0.unwritten > 0 }) && Date() < deadline {
            wake.signal()
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    private func run() {
        while true {
            wake.wait()
            let (lines, dropped) = queue.withLock { queue in
                defer {
                    queue.lines.removeAll(keepingCapacity: true)
                    queue.dropped = 0
                }
                return (queue.lines, queue.dropped)
            }
            if dropped > 0 { write("lbnode: \(dropped) log lines dropped: standard error was not read fast enough\n") }
            for line in lines { write(line) }
            queue.withLock { $0.unwritten -= lines.count }
        }
    }
}
