/// What a `FlowProbe` saw, counted: requests sent and answered, lost, answered twice, by which server, and the
/// longest time any flow went without a reply.
public struct ProbeTally: Codable, Sendable, Equatable {
    public var sent = 0
    public var answered = 0
    public var duplicates = 0
    /// Replies by server ID (as text, for JSON).
    public var answeredBy: [String: Int] = [:]
    public var longestGapMilliseconds = 0.0
    public var resets = 0

    public var lost: Int { max(0, sent - answered) }

    /// Counts the replies of `records` that arrived within `window` (ns since the probe started; all if nil). Sent
    /// and lost are counted over the whole run: a request left unanswered is lost wherever it was sent.
    public init(_ records: [FlowProbe.Record], window: ClosedRange<Int64>? = nil) {
        for record in records {
            sent += record.sent
            var seen = Set<UInt32>()
            var last: Int64?
            for reply in record.replies {
                if let last { longestGapMilliseconds = max(longestGapMilliseconds, Double(reply.time - last) / 1e6) }
                last = reply.time
                if !seen.insert(reply.sequence).inserted {
                    duplicates += 1
                    continue
                }
                if window.map({ $0.contains(reply.time) }) ?? true {
                    answeredBy["\(reply.server)", default: 0] += 1
                }
            }
            answered += seen.count
            if record.resetAt != nil { resets += 1 }
        }
    }
}

/// What the flows of a `FlowProbe` saw of one stretch of time (a node away, after the first failover): the figures of
/// a farm that must be steady. UDP flows send a request every interval, so a request of theirs sent within the window
/// and never answered is lost; every flow not reset before the window counts for the longest silence.
public struct WindowTally: Codable, Sendable, Equatable {
    /// A flow's longest wait for the farm: from the first request it sent after its last reply (or the window's start)
    /// until its next reply (or the window's end).
    public struct Silence: Codable, Sendable, Equatable {
        public var milliseconds = 0.0
        /// When it ended, in ns since the probe started.
        public var endedAt: Int64 = 0
        /// The server whose reply ended it (0: the window's end did).
        public var server: UInt16 = 0
    }

    /// How long the window lasted.
    public var seconds = 0.0
    /// UDP requests sent within the window, and how many of them were never answered.
    public var sent = 0
    public var lost = 0
    public var duplicates = 0
    /// The longest silence of any flow, in ms. A silence counts only while the flow has a request out: a probe that
    /// sent nothing for a while (its own thread late on a loaded machine) is not a silence of the farm's.
    public var longestSilenceMilliseconds = 0.0
    /// Each flow's longest silence, in the probe's flow order (flows reset before the window left out).
    public var silences: [Silence] = []
    /// TCP connections reset within the window.
    public var resets = 0

    /// - Parameters:
    ///   - sendTimes: `FlowProbe.sendTimes`: when each sequence number went out.
    ///   - window: ns since the probe started.
    public init(_ records: [FlowProbe.Record], sendTimes: [Int64], window: ClosedRange<Int64>) {
        seconds = Double(window.upperBound - window.lowerBound) / 1e9
        let sequences = sendTimes.indices.filter { window.contains(sendTimes[$0]) }.map(UInt32.init)
        for record in records {
            if let resetAt = record.resetAt {
                if window.contains(resetAt) { resets += 1 }
                if resetAt <= window.upperBound { continue }
            }
            let silence = Self.longestSilence(of: record, sendTimes: sendTimes, window: window)
            silences.append(silence)
            longestSilenceMilliseconds = max(longestSilenceMilliseconds, silence.milliseconds)
            guard !record.isTCP else { continue }
            var answered = Set<UInt32>()
            for reply in record.replies where !answered.insert(reply.sequence).inserted {
                if sendTimes.indices.contains(Int(reply.sequence)), window.contains(sendTimes[Int(reply.sequence)]) {
                    duplicates += 1
                }
            }
            sent += sequences.count
            lost += sequences.filter { !answered.contains($0) }.count
        }
    }

    /// Which flows were silent longer than `milliseconds`, for a failure message: a few flows of one server point at
    /// that server, all flows at once at the machine.
    public func silences(over milliseconds: Double, since start: Int64) -> String {
        let over = silences.filter { $0.milliseconds > milliseconds }
        guard let longest = over.max(by: { $0.milliseconds < $1.milliseconds }) else { return "no flow" }
        let servers = Set(over.map(\.server)).sorted().map { $0 == 0 ? "none (the window's end)" : "node \($0)" }
        return "\(over.count) of \(silences.count) flows, ended by replies of \(servers.joined(separator: ", ")); "
            + "the longest ended \(String(format: "%.2f", Double(longest.endedAt - start) / 1e9)) s after the fault"
    }

    /// The flow's longest silence within `window`. The farm owes the flow a reply from the first request sent after
    /// the highest sequence it has answered; a later reply ends the wait, as the window's end does.
    static func longestSilence(of record: FlowProbe.Record, sendTimes: [Int64], window: ClosedRange<Int64>) -> Silence {
        var longest = Silence(endedAt: window.lowerBound)
        var last = window.lowerBound
        var highest = -1
        func wait(until end: Int64, server: UInt16) {
            let owed = highest + 1 < sendTimes.count ? max(last, sendTimes[highest + 1]) : Int64.max
            let milliseconds = Double(end - owed) / 1e6
            if owed < end, milliseconds > longest.milliseconds {
                longest = Silence(milliseconds: milliseconds, endedAt: end, server: server)
            }
        }
        for reply in record.replies {
            if window.contains(reply.time) {
                wait(until: reply.time, server: reply.server)
                last = reply.time
            }
            highest = max(highest, Int(reply.sequence))
        }
        wait(until: window.upperBound, server: 0)
        return longest
    }
}
