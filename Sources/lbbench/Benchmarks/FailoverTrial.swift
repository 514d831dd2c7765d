import Testbed

/// How one server is made to fail.
enum FailureMode: String, CaseIterable, Codable, Sendable {
    /// SIGKILL of its lbnode: silence, detected after `dead_after` intervals.
    case kill
    /// Its cable cut at the switch.
    case link
    /// SIGSTOP: the process is frozen, as by a stalled VM.
    case stop
    /// `lbnode drain`: planned, announced, connections kept.
    case drain
    /// Its cable cut for `--long-seconds` (a minute: past the ARP cycle), then restored: after the first failover the
    /// farm must stay as steady as before it.
    case longCut = "long-cut"
    /// On real hosts: failed by hand, or by the user's `--fail-command`.
    case manual

    /// The modes lbbench can cause on a testbed.
    static let onTestbed: [FailureMode] = [.kill, .link, .stop, .drain]
}

/// The figures of one failover trial, from a `FlowProbe` record and the moment of the failure.
struct FailoverTrial: Codable, Sendable {
    var system: FailoverSystem
    var mode: FailureMode
    /// The longest time an affected flow went without a reply, in ms.
    var longestInterruptionMilliseconds: Double
    /// From the failure until every affected UDP flow was answered by a survivor (every bucket served), in ms; nil if
    /// some flow never was. (Affected TCP connections are reset by the survivor that takes them, by design.)
    var recoveryMilliseconds: Double?
    /// The longest gap of a flow that the failed server did not serve (should stay near the send interval), in ms.
    var unaffectedLongestGapMilliseconds: Double
    var flows: Int
    var affectedFlows: Int
    var requestsSent: Int
    var requestsLost: Int
    var duplicates: Int
    /// The first requests answered more than once: where to look in the nodes' logs.
    var duplicateExamples: [DuplicateAnswer]?
    var tcpResetAffected: Int
    var tcpResetUnaffected: Int
    /// TCP connections reset before the failure (not its doing: the farm had not settled when the probe began).
    var tcpResetBeforeFailure: Int
    /// `long-cut`: what the flows saw from a second after the cut until the cable came back, and the view changes
    /// the survivors logged meanwhile (nil for keepalived, which has no view).
    var whileAway: WindowTally?
    var viewChangesWhileAway: Int?

    /// Reads a probe's record. `victim` is the failed server's ID, `failedAt` the failure in probe nanoseconds.
    init(
        system: FailoverSystem = .vipfarm, mode: FailureMode, records: [FlowProbe.Record], victim: UInt16,
        failedAt: Int64
    ) {
        self.system = system
        self.mode = mode
        flows = records.count
        var affected = 0
        var longest: Int64 = 0
        var unaffectedLongest: Int64 = 0
        var recovered: Int64? = 0
        var sent = 0
        var answered = 0
        var duplicates = 0
        var resetAffected = 0
        var resetUnaffected = 0
        var resetBefore = 0
        var examples: [DuplicateAnswer] = []
        for (flowIndex, record) in records.enumerated() {
            let before = record.replies.last { $0.time < failedAt }
            let isAffected = before?.server == victim
            var gap: Int64 = 0
            var last = record.replies.first?.time ?? 0
            for reply in record.replies {
                gap = max(gap, reply.time - last)
                last = reply.time
            }
            var seen = [UInt32: UInt16]()
            for reply in record.replies {
                guard let first = seen[reply.sequence] else {
                    seen[reply.sequence] = reply.server
                    continue
                }
                duplicates += 1
                if examples.count < DuplicateAnswer.kept {
                    examples.append(
                        DuplicateAnswer(
                            flow: flowIndex, isTCP: record.isTCP, sequence: reply.sequence,
                            servers: [first, reply.server],
                            millisecondsAfterFailure: Double(reply.time - failedAt) / 1e6))
                }
            }
            sent += record.sent
            answered += seen.count
            if isAffected {
                affected += 1
                longest = max(longest, gap)
                if !record.isTCP {
                    let again = record.replies.first { $0.time > failedAt && $0.server != victim }
                    if let again, let done = recovered {
                        recovered = max(done, again.time - failedAt)
                    } else {
                        recovered = nil
                    }
                }
            } else {
                unaffectedLongest = max(unaffectedLongest, gap)
            }
            if let resetAt = record.resetAt {
                if resetAt < failedAt {
                    resetBefore += 1
                } else if isAffected {
                    resetAffected += 1
                } else {
                    resetUnaffected += 1
                }
            }
        }
        affectedFlows = affected
        longestInterruptionMilliseconds = Double(longest) / 1e6
        recoveryMilliseconds = recovered.map { Double($0) / 1e6 }
        unaffectedLongestGapMilliseconds = Double(unaffectedLongest) / 1e6
        requestsSent = sent
        requestsLost = max(0, sent - answered)
        self.duplicates = duplicates
        duplicateExamples = examples.isEmpty ? nil : examples
        tcpResetAffected = resetAffected
        tcpResetUnaffected = resetUnaffected
        tcpResetBeforeFailure = resetBefore
    }
}

/// A request answered twice: the flow, the servers of the first and the second answer, and when the second came
/// (negative: before the failure).
struct DuplicateAnswer: Codable, Sendable {
    static let kept = 10
    var flow: Int
    var isTCP: Bool
    var sequence: UInt32
    var servers: [UInt16]
    var millisecondsAfterFailure: Double
}
