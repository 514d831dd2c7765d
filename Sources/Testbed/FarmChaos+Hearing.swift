import Foundation
import Synchronization
import Glibc
import Hashing
import RouteSetup
import TapEngine

extension FarmChaos {
    // MARK: - Heartbeat loss between two nodes

    /// One round of heartbeat loss: each `(deaf, unheard)` pair is an nftables input drop on node `deaf` of node
    /// `unheard`'s heartbeats; `standsDown` is the node that must stop serving, and `keeps` the other node of the pair,
    /// which must not.
    struct HearingCut {
        var drops: [(deaf: Int, unheard: Int)]
        var standsDown: Int
        var keeps: Int
    }

    /// The rounds of a hearing scenario, as the rules in docs/architecture.md say who stands down: the node not
    /// heard, unless a third node hears both (then the higher ID of the pair).
    static func hearingCuts(_ scenario: ChaosScenario) -> [HearingCut] {
        switch scenario {
        case .oneWayPair:
            [HearingCut(drops: [(2, 1)], standsDown: 1, keeps: 2), HearingCut(drops: [(1, 2)], standsDown: 2, keeps: 1)]
        case .deafPair:
            [
                HearingCut(drops: [(2, 1), (1, 2)], standsDown: 2, keeps: 1),
                HearingCut(drops: [(3, 2), (2, 3)], standsDown: 3, keeps: 2),
            ]
        default:
            [HearingCut(drops: [(2, 1)], standsDown: 2, keeps: 1), HearingCut(drops: [(1, 2)], standsDown: 2, keeps: 1)]
        }
    }

    /// Heartbeat loss between two nodes (`hearingCuts`), each round for `seconds`, then healed. Held when no request
    /// was answered twice, no flow went without an answer longer than the recovery budget, the expected node stood
    /// down each time and the other node of the pair did not, and the farm came back to one view after each.
    func hearingLoss(_ scenario: ChaosScenario, seconds: Double) throws -> ChaosOutcome {
        let table = "vfhearing"
        let cuts = Self.hearingCuts(scenario)
        var stoodDown = 0
        var bothStoodDown = 0
        var reunited = 0
        var recoveries: [String: Double] = [:]
        func fences(_ node: Int) -> Int { farm.log(node).components(separatedBy: "fenced (").count - 1 }
        let records = try whileRequestsFlow { probe in
            for cut in cuts {
                let before = (fences(cut.standsDown), fences(cut.keeps))
                let cutAt = probe.now
                for drop in cut.drops {
                    let from = farm.testbed.servers[drop.unheard - 1].ip
                    try farm.testbed.servers[drop.deaf - 1].namespace.run { () throws(NetlinkError) in
                        Result {
                            try NFTables.apply(
                                """
                                table inet \(table) {
                                  chain in { type filter hook input priority 0; ip saddr \(from) udp dport 7946 drop; }
                                }
                                """)
                        }
                    }.get()
                }
                Thread.sleep(forTimeInterval: seconds)
                let name = cut.drops.map { "\($0.deaf)_deaf_to_\($0.unheard)" }.joined(separator: "_and_")
                recoveries["recovery_ms_\(name)"] = Self.recovery(of: probe.records, after: cutAt) ?? -1
                for drop in cut.drops {
                    try farm.testbed.servers[drop.deaf - 1].namespace.run { () throws(NetlinkError) in
                        Result { try NFTables.apply("delete table inet \(table)") }
                    }.get()
                }
                if fences(cut.standsDown) > before.0 {
                    stoodDown += 1
                    if fences(cut.keeps) > before.1 { bothStoodDown += 1 }
                }
                let everyone = farm.testbed.servers.map(\.number)
                if farm.waitForView(VirtualFarm.view(everyone), nodes: everyone, seconds: 5) { reunited += 1 }
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        var outcome = ChaosOutcome(scenario: scenario, passed: true, tally: ProbeTally(records))
        outcome.figures = recoveries.merging(
            [
                "stood_down": Double(stoodDown), "both_stood_down": Double(bothStoodDown),
                "reunited": Double(reunited), "duplicates": Double(outcome.tally.duplicates),
                "longest_gap_ms": outcome.tally.longestGapMilliseconds,
            ], uniquingKeysWith: { $1 })
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        if stoodDown < cuts.count {
            outcome.failures.append("the node that had to stand down did so \(stoodDown) of \(cuts.count) times")
        }
        if bothStoodDown > 0 { outcome.failures.append("both nodes of the pair stood down \(bothStoodDown) times") }
        if reunited < cuts.count { outcome.failures.append("one view again after \(reunited) of \(cuts.count) heals") }
        if outcome.tally.longestGapMilliseconds > recoveryBudgetMilliseconds {
            outcome.failures.append("a flow went \(Int(outcome.tally.longestGapMilliseconds)) ms without an answer")
        }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    // MARK: - Replay across incarnations

    /// Node 3's heartbeats captured on its segment for 2 s; node 3 killed, started again, killed again; then the
    /// capture replayed, as node 3, to nodes 1 and 2 at its original pace. Held when no view changed during the replay
    /// (node 3 stays dead), no request was lost after the second failover, and the replayed heartbeats were refused as
    /// unanswered challenges.
    func replay() throws -> ChaosOutcome {
        let node3 = farm.testbed.servers[2]
        let source = node3.address.bytes
        var captured: [CapturedFrame] = []
        var replayedAt: Int64 = 0
        var replayEndedAt: Int64 = 0
        var changesDuringReplay = 0
        var upDuringReplay = false
        var rejectedBefore: [String: Int] = [:]
        var refused: [String: Int] = [:]
        let probe = try probing { probe in
            // Where an attacker sees them: as they reach nodes 1 and 2 (a packet socket sees the frames a host
            // sends only with ETH_P_ALL).
            let receivers = farm.testbed.servers.prefix(2)
            let captures = Mutex([[CapturedFrame]](repeating: [], count: receivers.count))
            DispatchQueue.concurrentPerform(iterations: receivers.count) { index in
                let frames = try? receivers[index].namespace.run { () throws(NetlinkError) in
                    Result { () throws(SystemCallError) in try Self.captureHeartbeats(from: source, seconds: 2) }
                }.get()
                captures.withLock { $0[index] = frames ?? [] }
            }
            captured = captures.withLock { $0 }.flatMap { $0 }.sorted { $0.at < $1.at }
            farm.signal(3, SIGKILL)
            farm.waitForExit(3)
            Thread.sleep(forTimeInterval: 1)
            try farm.start(3)
            let everyone = farm.testbed.servers.map(\.number)
            _ = farm.waitForView(VirtualFarm.view(everyone), nodes: everyone, seconds: 5)
            Thread.sleep(forTimeInterval: 0.5)
            farm.signal(3, SIGKILL)
            farm.waitForExit(3)
            _ = farm.waitForView(VirtualFarm.view([1, 2]), nodes: [1, 2], seconds: 5)
            Thread.sleep(forTimeInterval: 0.5)
            let logsBefore = [1, 2].map { farm.log($0) }
            let changesBefore = viewChanges(of: [1, 2])
            rejectedBefore = rejectedHeartbeats()
            replayedAt = probe.now
            try node3.namespace.run { () throws(NetlinkError) in
                Result { () throws(SystemCallError) in try Self.replay(captured) }
            }.get()
            replayEndedAt = probe.now
            Thread.sleep(forTimeInterval: 0.5)
            changesDuringReplay = viewChanges(of: [1, 2]) - changesBefore
            refused = rejectedHeartbeats().merging(rejectedBefore.mapValues { -$0 }, uniquingKeysWith: +)
            upDuringReplay = zip([1, 2], logsBefore).contains { node, before in
                farm.log(node).dropFirst(before.count).contains("node 3 is up")
            }
        }
        let records = probe.records
        var outcome = ChaosOutcome(scenario: .replay, passed: true, tally: ProbeTally(records))
        let afterReplay = WindowTally(records, sendTimes: probe.sendTimes, window: replayedAt...replayEndedAt)
        outcome.figures = [
            "captured": Double(captured.count), "view_changes_during_replay": Double(changesDuringReplay),
            "refused_unanswered": Double(refused["unanswered"] ?? 0),
            "refused_otherwise": Double(refused.filter { $0.key != "unanswered" }.values.reduce(0, +)),
            "lost_during_replay": Double(afterReplay.lost), "duplicates": Double(outcome.tally.duplicates),
        ]
        if captured.count < 50 { outcome.failures.append("only \(captured.count) heartbeats captured") }
        if changesDuringReplay != 0 || upDuringReplay {
            outcome.failures.append("the replay changed the survivors' view \(changesDuringReplay) times")
        }
        if (refused["unanswered"] ?? 0) < captured.count / 2 {
            outcome.failures.append(
                "\(captured.count) heartbeats replayed, refused: \(refused.filter { $0.value != 0 }) "
                    + "(unanswered expected)")
        }
        if afterReplay.lost != 0 { outcome.failures.append("\(afterReplay.lost) requests lost during the replay") }
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    /// Heartbeats nodes 1 and 2 refused, by reason (`lbnode status`).
    func rejectedHeartbeats() -> [String: Int] {
        var rejected: [String: Int] = [:]
        for node in [1, 2] {
            let status = (try? farm.control(["status", "--json"], node: node)).flatMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            for case let (reason, count as Int) in status?["heartbeatsRejected"] as? [String: Any] ?? [:] {
                rejected[reason, default: 0] += count
            }
        }
        return rejected
    }

    /// The heartbeats from `source` that reach the calling thread's namespace during `seconds`, as frames, and when (in
    /// seconds from the start).
    static func captureHeartbeats(from source: [UInt8], seconds: Double) throws(SystemCallError) -> [CapturedFrame] {
        let sniffer = try ProbePort(interface: "eth0", etherType: 0x0800)
        let start = Date()
        var frames: [CapturedFrame] = []
        while Date().timeIntervalSince(start) < seconds {
            guard let frame = sniffer.receive(timeoutMilliseconds: 50) else { continue }
            var ip = Array(frame.payload)
            guard ip.count >= 28, ip[9] == 17, Array(ip[12..<16]) == source,
                UInt16(ip[22]) << 8 | UInt16(ip[23]) == 7946
            else { continue }
            // On veth with checksum offload the UDP checksum is not filled in yet (on a wire it would be): leave
            // it out, as IPv4 allows, or the replay is dropped for a bad checksum instead of reaching lbnode.
            let udp = Int(ip[0] & 0x0F) * 4
            ip[udp + 6] = 0
            ip[udp + 7] = 0
            frames.append(
                CapturedFrame(
                    at: Date().timeIntervalSince(start), destination: frame.destination, source: frame.source,
                    payload: ip))
        }
        return frames
    }

    /// Sends `frames` again as they were, at their original pace.
    static func replay(_ frames: [CapturedFrame]) throws(SystemCallError) {
        let port = try ProbePort(interface: "eth0", etherType: 0x0800)
        let start = Date()
        for frame in frames {
            let wait = frame.at - Date().timeIntervalSince(start)
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            try port.send(to: frame.destination, from: frame.source, payload: frame.payload)
        }
    }
}

/// A frame seen on the segment, and when (seconds from the start of the capture).
struct CapturedFrame: Sendable {
    var at: Double
    var destination: UInt64
    var source: UInt64
    /// What follows the Ethernet header.
    var payload: [UInt8]
}
