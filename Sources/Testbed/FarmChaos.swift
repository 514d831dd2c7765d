import Foundation
import Glibc
import Hashing
import RouteSetup
import TapEngine

/// Hostile and abnormal conditions, caused on a running `VirtualFarm` while a client's requests flow (`FlowProbe`):
/// the end-to-end tests and `lbbench chaos` run the same scenarios and read the same figures.
public enum ChaosScenario: String, CaseIterable, Codable, Sendable {
    /// Junk UDP at the generator's full speed to node 1's heartbeat port (the kernel filter drops it).
    case junkFlood = "junk-flood"
    /// Heartbeat-shaped datagrams with a wrong key at full speed, spoofing node 2's address with TTL 255 (they pass
    /// the kernel filter and cost node 1 an HMAC each).
    case forgedFlood = "forged-flood"
    /// Node 3 killed; then heartbeat-shaped datagrams with made-up incarnations at full speed to node 1, spoofing node
    /// 3's address and port with TTL 255: a dead peer's incarnation is not pinned, so they pass the kernel filter.
    case deadPeerFlood = "dead-peer-flood"
    /// Frames of other EtherTypes at full speed to the VIP's MAC and to broadcast, a third of them of the nodes' probe
    /// EtherType (with and without its tag): the engines' and the probe sockets' kernel filters drop them.
    case etherTypeFlood = "ethertype-flood"
    /// With a witness (the client's address): ICMP echo requests to the VIP from random sources, and echo replies
    /// spoofing the witness to node 1, at full speed.
    case icmpFlood = "icmp-flood"
    /// The director (node 1) frozen 1.5 s with SIGSTOP, then SIGCONT.
    case freezeDirector = "freeze-director"
    /// Node 3 frozen 1.5 s.
    case freezeOther = "freeze-other"
    /// Heartbeats between node 3 and the others blocked with nftables, then unblocked.
    case partition
    /// A two-node farm with a witness (the client's address): node 2 cut off from node 1's heartbeats and from the
    /// witness (nftables), then healed. Node 2 must fence itself (isolated), node 1 serve alone.
    case isolated
    /// Node 2's TAP deleted (`ip link del lb0`).
    case tapDeleted = "tap-deleted"
    /// Node 2's NIC deleted and re-created (moved out of its namespace and back, its address added again).
    case nicRecreated = "nic-recreated"
    /// Node 2's NIC set down for a second, then up.
    case nicDownUp = "nic-down-up"
    /// 100 idle TCP connections, a random-source SYN flood at full speed, then a drain of node 3.
    case synFlood = "syn-flood"
    /// Node 2's cable cut for the long-fault time (a minute by default: past the ARP cycle), then restored.
    case longCut = "long-cut"
    /// Node 2 powered off for the long-fault time (its lbnode killed, its cable cut), then on and started again.
    case poweredOff = "powered-off"
    /// Node 3 configured on every peer but never started, its server absent (not installed yet, or powered off for
    /// good: nothing answers ARP for its address), for the long-fault time.
    case neverStarted = "never-started"
    /// Node 2 restarted ten times (SIGTERM, then started again once it exited, as `systemctl restart` does) under
    /// UDP and TCP flows: no connection may be reset.
    case restarts
    /// wrk (32 keep-alive connections to nginx) through the VIP while node 2 is restarted ten times: no socket error.
    case restartsUnderWrk = "restarts-wrk"
    /// Node 2 stops hearing node 1's heartbeats for the long-fault time (an nftables input drop: a bad optic, an
    /// asymmetric ACL), then hears them again; then node 1 stops hearing node 2. Node 3 hears both, so node 2, the
    /// higher ID of the pair, must stand down both times, and node 1 never.
    case oneWay = "one-way"
    /// The same on a two-node farm (no third node to tell anyone the other is alive): the node not heard stands down.
    case oneWayPair = "one-way-pair"
    /// Nodes 1 and 2 stop hearing each other for the long-fault time while node 3 hears both; then nodes 2 and 3. The
    /// higher ID of the pair must stand down, the lower one serve on.
    case deafPair = "deaf-pair"
    /// Node 3's heartbeats captured for 2 s; node 3 killed, started, killed again; the capture replayed as node 3.
    case replay
    /// Node 2's lbnode stopped (SIGSTOP) for an interval to 1.5 deadlines (at most 40 ms) at random, every 50 to 250
    /// ms, for the long-fault time: a host whose CPU is taken away for milliseconds at a time. After the first 5 s no
    /// view may change and nothing be lost.
    case stalls
}

/// What a scenario measured, and whether it held.
public struct ChaosOutcome: Codable, Sendable {
    public var scenario: ChaosScenario
    public var passed: Bool
    /// What failed, one line each (empty when it passed).
    public var failures: [String] = []
    /// Requests through the whole scenario.
    public var tally: ProbeTally
    /// Figures of the scenario (view changes, frames sent by the attacker, recovery times in ms, resets, ...).
    public var figures: [String: Double] = [:]
    /// When it failed, the view changes, warnings and errors the nodes logged meanwhile (`VirtualFarm.events`).
    public var events: [String] = []
}

extension ChaosScenario {
    /// Whether the scenario is a flood at the generator's full speed.
    public var isFlood: Bool { [.junkFlood, .forgedFlood, .deadPeerFlood, .etherTypeFlood, .icmpFlood].contains(self) }

    /// The farm the scenario runs on: three nodes, but for `isolated` (two, with the first client as the witness),
    /// `one-way-pair` (two), `icmp-flood` (with the first client as the witness) and `restarts-wrk` (nginx on every
    /// server).
    public func shape(_ options: inout VirtualFarm.Options) {
        switch self {
        case .isolated, .oneWayPair:
            options.testbed.servers = 2
            if self == .isolated {
                options.witness = VirtualNetwork.Host.address(role: .client, number: 1).address.description
            }
        case .restartsUnderWrk:
            options.realApplications = true
        case .icmpFlood:
            options.witness = VirtualNetwork.Host.address(role: .client, number: 1).address.description
        case .neverStarted:
            options.startNodes = [1, 2]
            options.absentServers = [3]
        default: break
        }
    }
}

/// Runs the scenarios on a three-node farm (`ChaosScenario.shape`).
public struct FarmChaos {
    public let farm: VirtualFarm
    /// How long floods last, in seconds.
    public var floodSeconds: Double
    /// Within how many ms a node's clients must be served again after a failure (the failover time plus slack for a
    /// machine shared with other work).
    public var recoveryBudgetMilliseconds: Double

    /// How long the long faults last (`long-cut`, `powered-off`, `never-started`; `one-way`, `one-way-pair` each
    /// direction), in seconds.
    public var longFaultSeconds: Double

    /// The share of requests a flood may cost (0: none, as `lbbench chaos` holds; the end-to-end tests allow 0.5 %
    /// for the shared kernel's backlog, their debug builds beside the attacker on two cores). A view change is never
    /// allowed.
    public var floodLossAllowance: Double = 0

    public init(
        farm: VirtualFarm, floodSeconds: Double = 30, recoveryBudgetMilliseconds: Double = 500,
        longFaultSeconds: Double = 60
    ) {
        self.farm = farm
        self.floodSeconds = floodSeconds
        self.recoveryBudgetMilliseconds = recoveryBudgetMilliseconds
        self.longFaultSeconds = longFaultSeconds
    }

    /// The view changes in the logs of `nodes` (default: every node; `VirtualFarm.isViewChange`).
    public func viewChanges(of nodes: [Int]? = nil) -> Int {
        (nodes ?? Array(1...farm.testbed.servers.count))
            .map { farm.log($0).split(separator: "\n").filter(VirtualFarm.isViewChange).count }.reduce(0, +)
    }

    /// Waits until no node's view changed for `quietSeconds` (at most `seconds`); whether it did: a farm still settling
    /// after its start would charge its own view changes to the fault that follows.
    public func waitUntilSteady(quietSeconds: Double = 2, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var changes = viewChanges()
        var since = Date()
        while Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            let now = viewChanges()
            if now != changes {
                changes = now
                since = Date()
            } else if Date().timeIntervalSince(since) >= quietSeconds {
                return true
            }
        }
        return false
    }

    public func run(_ scenario: ChaosScenario) throws -> ChaosOutcome {
        switch scenario {
        case .junkFlood, .forgedFlood, .deadPeerFlood: return try flood(scenario)
        case .etherTypeFlood: return try underFlood(scenario) { try etherTypeFloodFrames() }
        case .icmpFlood: return try underFlood(scenario) { try icmpFloodFrames() }
        case .freezeDirector: return try freeze(scenario, node: 1)
        case .freezeOther: return try freeze(scenario, node: 3)
        case .partition: return try partition(node: 3, blocking: "udp dport 7946 drop;")
        case .isolated: return try partition(node: 2, blocking: "udp dport 7946 drop; meta l4proto icmp drop;")
        case .tapDeleted, .nicRecreated, .nicDownUp: return try dataPath(scenario, node: 2)
        case .synFlood: return try synFlood()
        case .longCut, .poweredOff, .neverStarted: return try longFault(scenario)
        case .restarts: return try restarts(node: 2, times: 10)
        case .restartsUnderWrk: return try restartsUnderWrk(node: 2, times: 10)
        case .oneWay, .oneWayPair, .deafPair: return try hearingLoss(scenario, seconds: longFaultSeconds)
        case .replay: return try replay()
        case .stalls: return try stalls(node: 2)
        }
    }

    // MARK: - Requests

    /// Runs `body` while 60 UDP flows send a request every 10 ms; the probe's records.
    func whileRequestsFlow(_ body: (FlowProbe) throws -> Void) throws -> [FlowProbe.Record] {
        try probing(body).records
    }

    /// Runs `body` while 60 UDP flows (and `tcp` TCP connections) send a request every 10 ms; the probe, stopped.
    func probing(tcp: Int = 0, _ body: (FlowProbe) throws -> Void) throws -> FlowProbe {
        let client = farm.testbed.clients[0]
        let probe = try client.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                try FlowProbe(
                    vip: farm.vip, port: VirtualFarm.echoPort, udp: 60, tcp: tcp, firstPort: 31000,
                    intervalMilliseconds: 10)
            }
        }.get()
        probe.start()
        Thread.sleep(forTimeInterval: 0.5)
        do {
            try body(probe)
        } catch {
            probe.stop()
            throw error
        }
        Thread.sleep(forTimeInterval: 0.5)
        probe.stop(lingerMilliseconds: 300)
        return probe
    }

    /// The replies of `records` after `from` (ns) that came from `server`.
    static func answered(by server: UInt16, in records: [FlowProbe.Record], after from: Int64) -> Int {
        records.map { $0.replies.filter { $0.time > from && $0.server == server }.count }.reduce(0, +)
    }

    /// Milliseconds from `from` (ns) until every flow was answered again (nil if one never was).
    static func recovery(of records: [FlowProbe.Record], after from: Int64) -> Double? {
        var worst: Int64 = 0
        for record in records {
            guard let next = record.replies.first(where: { $0.time > from }) else { return nil }
            worst = max(worst, next.time - from)
        }
        return Double(worst) / 1e6
    }

    // MARK: - Heartbeat floods

    func flood(_ scenario: ChaosScenario) throws -> ChaosOutcome {
        let client = farm.testbed.clients[0]
        let target = farm.testbed.servers[0]
        let spoofed = farm.testbed.servers[scenario == .deadPeerFlood ? 2 : 1]
        let clientAddress = client.ip
        let targetAddress = target.ip
        let targetMAC = target.macValue
        let clientMAC = client.macValue
        let frames: [[UInt8]] = (0..<256).map { index in
            var payload = [UInt8](repeating: 0, count: 80)
            for byte in payload.indices { payload[byte] = UInt8.random(in: 0...255) }
            let spoofing = scenario != .junkFlood
            if spoofing {
                // Magic, version 2, active, healthy, the spoofed node's ID, no echoes, an incarnation (node 2's is
                // pinned, so the largest; dead node 3's is not, so a made-up one for each), a random signature: only
                // the HMAC can tell.
                let node = UInt8(scenario == .deadPeerFlood ? 3 : 2)
                payload.replaceSubrange(0..<12, with: Array("VFHB".utf8) + [2, 2, 1, 0, 0, node, 0, 0])
                if scenario == .forgedFlood {
                    payload.replaceSubrange(16..<24, with: [UInt8](repeating: 0xFF, count: 8))
                }
                payload[31] = UInt8(index)
            }
            return PacketBuilder.udp(
                destinationMAC: targetMAC, sourceMAC: clientMAC,
                source: spoofing ? spoofed.ip : clientAddress,
                destination: targetAddress, sourcePort: 7946, destinationPort: 7946, payload: payload,
                ttl: spoofing ? 255 : 64)
        }
        if scenario == .deadPeerFlood {
            farm.signal(3, SIGKILL)
            farm.waitForExit(3)
            _ = farm.waitForView(VirtualFarm.view([1, 2]), nodes: [1, 2], seconds: 5)
            Thread.sleep(forTimeInterval: 0.5)
        }
        return try underFlood(scenario) { frames }
    }

    // MARK: - Freezes

    func freeze(_ scenario: ChaosScenario, node: Int) throws -> ChaosOutcome {
        var frozenAt: Int64 = 0
        var thawedAt: Int64 = 0
        let records = try whileRequestsFlow { probe in
            frozenAt = probe.now
            farm.signal(node, SIGSTOP)
            Thread.sleep(forTimeInterval: 1.5)
            thawedAt = probe.now
            farm.signal(node, SIGCONT)
            Thread.sleep(forTimeInterval: 2)
        }
        var outcome = ChaosOutcome(scenario: scenario, passed: true, tally: ProbeTally(records))
        let recovery = Self.recovery(of: records, after: frozenAt)
        outcome.figures = [
            "recovery_ms": recovery ?? -1, "longest_gap_ms": outcome.tally.longestGapMilliseconds,
            "answered_by_frozen_while_frozen": Double(
                Self.answered(by: UInt16(node), in: records, after: frozenAt + 200_000_000)
                    - Self.answered(by: UInt16(node), in: records, after: thawedAt)),
        ]
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        if outcome.tally.longestGapMilliseconds > recoveryBudgetMilliseconds {
            outcome.failures.append(
                "a flow went \(Int(outcome.tally.longestGapMilliseconds)) ms without an answer "
                    + "(budget \(Int(recoveryBudgetMilliseconds)) ms)")
        }
        if Self.answered(by: UInt16(node), in: records, after: thawedAt + 1_500_000_000) == 0 {
            outcome.failures.append("node \(node) did not serve again after it was thawed")
        }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    // MARK: - Partition

    /// Blocks what `blocking` drops (nftables statements) in and out of `node` for 2 s, then heals.
    func partition(node: Int, blocking: String) throws -> ChaosOutcome {
        let isolated = farm.testbed.servers[node - 1]
        let table = "vfchaos"
        var blockedAt: Int64 = 0
        var healedAt: Int64 = 0
        var healed = false
        let records = try whileRequestsFlow { probe in
            blockedAt = probe.now
            try isolated.namespace.run { () throws(NetlinkError) in
                Result {
                    try NFTables.apply(
                        """
                        table inet \(table) {
                          chain in { type filter hook input priority 0; \(blocking) }
                          chain out { type filter hook output priority 0; \(blocking) }
                        }
                        """)
                }
            }.get()
            Thread.sleep(forTimeInterval: 2)
            healedAt = probe.now
            try isolated.namespace.run { () throws(NetlinkError) in
                Result { try NFTables.apply("delete table inet \(table)") }
            }.get()
            healed = farm.waitForView(
                farm.fullView, nodes: farm.testbed.servers.map(\.number), seconds: 5)
            Thread.sleep(forTimeInterval: 0.5)
        }
        let settled = blockedAt + Int64(recoveryBudgetMilliseconds * 1e6)
        var outcome = ChaosOutcome(
            scenario: node == 3 ? .partition : .isolated, passed: true, tally: ProbeTally(records))
        let byIsolated =
            Self.answered(by: UInt16(node), in: records, after: settled)
            - Self.answered(by: UInt16(node), in: records, after: healedAt)
        outcome.figures = [
            "answered_by_isolated_side": Double(byIsolated), "recovery_ms": Self.recovery(of: records, after: blockedAt) ?? -1,
            "longest_gap_ms": outcome.tally.longestGapMilliseconds,
        ]
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        if byIsolated != 0 { outcome.failures.append("the isolated node answered \(byIsolated) requests: both sides served") }
        if !healed { outcome.failures.append("no single view after the partition healed") }
        if outcome.tally.longestGapMilliseconds > recoveryBudgetMilliseconds {
            outcome.failures.append("a flow went \(Int(outcome.tally.longestGapMilliseconds)) ms without an answer")
        }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    // MARK: - Data path

    func dataPath(_ scenario: ChaosScenario, node: Int) throws -> ChaosOutcome {
        let server = farm.testbed.servers[node - 1]
        var brokenAt: Int64 = 0
        var repairedAt: Int64 = 0
        let records = try whileRequestsFlow { probe in
            brokenAt = probe.now
            try server.namespace.run { () throws(NetlinkError) in
                let netlink = try NetlinkSocket()
                switch scenario {
                case .tapDeleted:
                    try netlink.deleteLink(named: "lb0")
                case .nicDownUp:
                    try netlink.changeLink(named: VirtualNetwork.hostInterface, LinkChange(up: false))
                    Thread.sleep(forTimeInterval: 1)
                    try netlink.changeLink(named: VirtualNetwork.hostInterface, LinkChange(up: true))
                default:  // .nicRecreated: out of the namespace and back, as a driver reload re-registers it
                    let away = try NetworkNamespace.create(named: "\(server.namespace.name)-x")
                    defer { try? away.delete() }
                    try away.withDescriptor { (fd) throws(NetlinkError) in
                        try netlink.moveLink(named: VirtualNetwork.hostInterface, toNamespace: fd)
                    }
                    try away.run { () throws(NetlinkError) in
                        try server.namespace.withDescriptor { (fd) throws(NetlinkError) in
                            try NetlinkSocket().moveLink(named: VirtualNetwork.hostInterface, toNamespace: fd)
                        }
                    }
                    let link = try netlink.requireLink(named: VirtualNetwork.hostInterface)
                    try netlink.changeLink(named: VirtualNetwork.hostInterface, LinkChange(up: true))
                    try netlink.addAddress(server.address, toLink: link.index)
                }
            }
            repairedAt = probe.now
            Thread.sleep(forTimeInterval: 4)
        }
        var outcome = ChaosOutcome(scenario: scenario, passed: true, tally: ProbeTally(records))
        let servedAgain = Self.answered(by: UInt16(node), in: records, after: repairedAt + 2_500_000_000)
        let recovery = Self.recovery(of: records, after: brokenAt)
        outcome.figures = [
            "recovery_ms": recovery ?? -1, "answered_by_node_after_repair": Double(servedAgain),
            "longest_gap_ms": outcome.tally.longestGapMilliseconds,
        ]
        // The node's clients are served by the others within the failover time (a down NIC takes a second, which
        // is the scenario's own outage for nobody: the others serve meanwhile).
        if outcome.tally.longestGapMilliseconds > recoveryBudgetMilliseconds {
            outcome.failures.append(
                "a flow went \(Int(outcome.tally.longestGapMilliseconds)) ms without an answer "
                    + "(budget \(Int(recoveryBudgetMilliseconds)) ms)")
        }
        if servedAgain == 0 { outcome.failures.append("node \(node) did not serve again once repaired") }
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    // MARK: - SYN flood

    func synFlood() throws -> ChaosOutcome {
        let client = farm.testbed.clients[0]
        let connections = try farm.connect(count: 100)
        let firstAnswers = connections.map { $0.request(Array("a".utf8), timeoutMilliseconds: 3000) }
        let vipMAC = try client.namespace.run { () throws(NetlinkError) in Self.neighbourMAC(of: farm.vip) } ?? 0
        let clientMAC = client.macValue
        // Random sources on the segment's prefix, random ports: every SYN a new flow in some node's buckets.
        let frames: [[UInt8]] = (0..<4096).map { _ in
            PacketBuilder.tcp(
                destinationMAC: vipMAC, sourceMAC: clientMAC,
                source: IPAddress(ipv4: 0xC612_0000 | UInt32.random(in: 0x0200...0xFFFE) | 0x0001_0000),
                destination: farm.vip, sourcePort: UInt16.random(in: 1024...65535),
                destinationPort: VirtualFarm.echoPort, flags: 0x02, sequence: UInt32.random(in: 0...UInt32.max))
        }
        let sent = try client.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                try FrameBlaster(interface: VirtualNetwork.hostInterface, frames: frames).run(
                    seconds: floodSeconds, rate: 0)
            }
        }.get()
        _ = try farm.control(["drain", "--timeout", "30"], node: 3)
        Thread.sleep(forTimeInterval: 1)
        let after = connections.map { $0.request(Array("b".utf8), timeoutMilliseconds: 3000) }
        var outcome = ChaosOutcome(scenario: .synFlood, passed: true, tally: ProbeTally([]))
        let broken = zip(firstAnswers, after).filter { $0 != $1 }.count
        let resets = after.filter { $0 == .reset }.count
        outcome.figures = [
            "attack_frames": Double(sent), "attack_pps": Double(sent) / floodSeconds,
            "connections": Double(connections.count), "broken_after_drain": Double(broken), "resets": Double(resets),
            "served_by_drained_node": Double(firstAnswers.filter { $0 == .answered(server: 3) }.count),
        ]
        if firstAnswers.contains(where: { if case .answered = $0 { false } else { true } }) {
            outcome.failures.append("not every connection was answered before the flood")
        }
        if broken != 0 {
            outcome.failures.append("\(broken) connections answered differently after the drain (\(resets) reset)")
        }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    /// The MAC the calling thread's namespace has for `address` (`/proc/thread-self/net/arp`).
    public static func neighbourMAC(of address: IPAddress) -> UInt64? {
        guard let table = try? String(contentsOfFile: "/proc/thread-self/net/arp", encoding: .utf8) else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, fields[0] == "\(address)" else { continue }
            return UInt64(fields[3].replacingOccurrences(of: ":", with: ""), radix: 16)
        }
        return nil
    }
}
