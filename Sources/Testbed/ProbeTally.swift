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
