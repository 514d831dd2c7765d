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
    /// How long the window lasted.
    public var seconds = 0.0
    /// UDP requests sent within the window, and how many of them were never answered.
    public var sent = 0
    public var lost = 0
    public var duplicates = 0
    /// The longest time a flow went without a reply within the window (its edges count as replies), in ms.
    public var longestSilenceMilliseconds = 0.0
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
            var answered = Set<UInt32>()
            var last = window.lowerBound
            for reply in record.replies where window.contains(reply.time) {
                longestSilenceMilliseconds = max(longestSilenceMilliseconds, Double(reply.time - last) / 1e6)
                last = reply.time
            }
            longestSilenceMilliseconds = max(longestSilenceMilliseconds, Double(window.upperBound - last) / 1e6)
            guard !record.isTCP else { continue }
            for reply in record.replies where !answered.insert(reply.sequence).inserted {
                if sendTimes.indices.contains(Int(reply.sequence)), window.contains(sendTimes[Int(reply.sequence)]) {
                    duplicates += 1
                }
            }
            sent += sequences.count
            lost += sequences.filter { !answered.contains($0) }.count
        }
    }
}
