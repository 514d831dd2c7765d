import Foundation
import Logging
import Synchronization
import Testing

@testable import lbnode

/// lbnode's log lines: severity, millisecond timestamps, text or JSON, and a writer that never holds the caller.
struct LogTests {
    static let date = Date(timeIntervalSince1970: 1_764_912_000.125)

    @Test func aTextLineHasMillisecondsTheSeverityAndUnderSystemdItsPriority() {
        let line = LineLogHandler.line(
            level: .warning, message: "node 3 is dead: silent for 37 ms", label: "lbnode[web/1]", format: .text,
            syslogPrefix: false, at: Self.date)
        #expect(line.contains(".125"), "\(line)")  // milliseconds
        #expect(line.hasSuffix(" warning lbnode[web/1]: node 3 is dead: silent for 37 ms\n"), "\(line)")
        let journal = LineLogHandler.line(
            level: .warning, message: "x", label: "l", format: .text, syslogPrefix: true, at: Self.date)
        #expect(journal.hasPrefix("<4>"))
        #expect(LineLogHandler.priority(.error) == 3 && LineLogHandler.priority(.notice) == 5)
    }

    @Test func aJSONLineIsOneObject() throws {
        let line = LineLogHandler.line(
            level: .error, message: "stopped: \"quoted\"", label: "lbnode[web/1]", format: .json, syslogPrefix: true,
            at: Self.date)
        #expect(line.hasSuffix("}\n") && !line.dropLast().contains("\n"))
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["level"] == "error" && object["message"] == "stopped: \"quoted\"")
        #expect(object["source"] == "lbnode[web/1]" && object["time"]?.contains(".125") == true)
    }

    /// A writer that blocks (a journal that lags) never blocks the caller: lines beyond the queue are dropped, and
    /// counted in a line of their own once it writes again.
    @Test func aBlockedWriterCostsTheCallerNothing() {
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let written = Mutex<[String]>([])
        let output = LogOutput { line in
            entered.signal()
            gate.wait()
            gate.signal()
            written.withLock { $0.append(line) }
        }
        // The writer takes the first line and blocks in it (standard error not read).
        output.enqueue("first\n")
        entered.wait()
        let start = ContinuousClock.now
        for index in 0..<(LogOutput.capacity + 100) { output.enqueue("line \(index)\n") }
        #expect(ContinuousClock.now - start < .seconds(1))
        gate.signal()
        output.flush(seconds: 5)
        let lines = written.withLock { $0 }
        #expect(lines.contains("lbnode: 100 log lines dropped: standard error was not read fast enough\n"), "\(lines.prefix(3))")
        #expect(lines.filter { $0.hasPrefix("line ") }.count == LogOutput.capacity)
    }
}
