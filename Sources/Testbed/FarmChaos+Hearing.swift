import Foundation
import Synchronization
import Glibc
import Hashing
import RouteSetup
import TapEngine

extension FarmChaos {
    // MARK: - One-way heartbeat loss

    /// Node 2 stops hearing node 1's heartbeats (an nftables input drop on node 2: a bad optic, an asymmetric ACL),
    /// for `seconds`, then hears them again; then the other way round. Held when no request was answered twice, no
    /// flow went without an answer longer than the recovery budget, the node that was not heard stood down each time,
    /// and the farm came back to one view after each.
    func oneWay(seconds: Double) throws -> ChaosOutcome {
        let table = "vfoneway"
        var stoodDown = 0
        var reunited = 0
        var recoveries: [Double] = []
        let standDown = "fenced (a live peer that can serve without this node does not hear it)"
        let records = try whileRequestsFlow { probe in
            for (deaf, unheard) in [(2, 1), (1, 2)] {
                let before = farm.log(unheard).components(separatedBy: standDown).count
                let from = IPAddress(bytes: farm.testbed.servers[unheard - 1].address.bytes)!
                let cutAt = probe.now
                try farm.testbed.servers[deaf - 1].namespace.run { () throws(NetlinkError) in
                    Result {
                        try NFTables.apply(
                            """
                            table inet \(table) {
                              chain in { type filter hook input priority 0; ip saddr \(from) udp dport 7946 drop; }
                            }
                            """)
                    }
                }.get()
                Thread.sleep(forTimeInterval: seconds)
                recoveries.append(Self.recovery(of: probe.records, after: cutAt) ?? -1)
                try farm.testbed.servers[deaf - 1].namespace.run { () throws(NetlinkError) in
                    Result { try NFTables.apply("delete table inet \(table)") }
                }.get()
                if farm.log(unheard).components(separatedBy: standDown).count > before { stoodDown += 1 }
                let everyone = farm.testbed.servers.map(\.number)
                if farm.waitForView(VirtualFarm.view(everyone), nodes: everyone, seconds: 5) { reunited += 1 }
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        var outcome = ChaosOutcome(
            scenario: farm.testbed.servers.count == 2 ? .oneWayPair : .oneWay, passed: true, tally: ProbeTally(records))
        outcome.figures = [
            "stood_down": Double(stoodDown), "reunited": Double(reunited),
            "duplicates": Double(outcome.tally.duplicates),
            "recovery_ms_2_deaf_to_1": recoveries.first ?? -1, "recovery_ms_1_deaf_to_2": recoveries.last ?? -1,
            "longest_gap_ms": outcome.tally.longestGapMilliseconds,
        ]
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        if stoodDown < 2 { outcome.failures.append("the node not heard stood down \(stoodDown) of 2 times") }
        if reunited < 2 { outcome.failures.append("one view again after \(reunited) of 2 heals") }
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
