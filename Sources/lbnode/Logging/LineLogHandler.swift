import Foundation
import Logging

/// lbnode's log lines: one line per event, with a millisecond timestamp, the severity and the node, as text or as JSON
/// (`--log-format`), handed to `LogOutput` (never written on the caller's thread).
///
/// Under systemd (`JOURNAL_STREAM` set) a text line starts with its syslog priority, `<4>` for a warning
/// (sd-daemon(3)): journald strips it and files the line at that priority, so `journalctl -p warning` finds it.
struct LineLogHandler: LogHandler {
    enum Format: String, CaseIterable, Sendable {
        case text, json
    }

    let label: String
    let format: Format
    let syslogPrefix: Bool
    let output: LogOutput
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, format: Format, syslogPrefix: Bool, output: LogOutput = .shared) {
        self.label = label
        self.format = format
        self.syslogPrefix = syslogPrefix
        self.output = output
    }

    /// Whether standard error goes to the journal (systemd sets `JOURNAL_STREAM` for a unit's output).
    static var writesToJournal: Bool { ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        output.enqueue(
            Self.line(
                level: event.level, message: "\(event.message)", label: label, format: format,
                syslogPrefix: syslogPrefix, at: Date()))
    }

    /// One formatted line, with its newline.
    static func line(
        level: Logger.Level, message: String, label: String, format: Format, syslogPrefix: Bool, at date: Date
    ) -> String {
        let time = date.formatted(Self.timestamp)
        switch format {
        case .text:
            let prefix = syslogPrefix ? "<\(priority(level))>" : ""
            return "\(prefix)\(time) \(level) \(label): \(message)\n"
        case .json:
            struct Line: Encodable {
                var time: String
                var level: String
                var source: String
                var message: String
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let json = (try? encoder.encode(Line(time: time, level: "\(level)", source: label, message: message)))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            return json + "\n"
        }
    }

    /// ISO 8601 with milliseconds and the UTC offset: a 30 ms failover can be ordered across nodes.
    static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .current)

    /// The syslog priority of a level (sd-daemon(3): `<3>` error ... `<7>` debug).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
