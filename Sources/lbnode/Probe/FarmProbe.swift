import Crypto
import Foundation
import Hashing
import RouteSetup
import TapEngine

/// `lbnode probe` (and `delivery: auto` at the start of `lbnode run`): what the network between the farm's servers
/// lets through, before the VIP goes live. Every node probes at the same time; each sends, every 100 ms for a few
/// seconds, the rounds of `ProbeFrames` and an authenticated message on the heartbeat port to every peer: what it
/// saw, its MTU and, once its own time is over, its verdict. A node's own verdict covers the pairs it is part of; the
/// farm's is the costliest of the verdicts of every node heard (each waits for the others' for up to `seconds` more),
/// so every node that probed names the same mode.
///
/// It also sends ARP probes for the VIP (RFC 5227: sender address 0.0.0.0), or for an IPv6 VIP duplicate address
/// detection's neighbour solicitations (RFC 4862), and reports any answer: the VIP in use. Heartbeats of nodes that
/// already run are reported with the delivery they say they use (`delivery: auto` joins the farm in that mode), if they
/// answer the probe's own heartbeats (`ProbeChallenge`).
struct FarmProbe {
    let config: FarmConfig
    /// The farm's keys: the first signs, any verifies.
    let keys: [Data]
    var seconds: Double = 3
    /// Judge every configured peer (`lbnode probe`), or only those that answered (`delivery: auto`: the others are not
    /// running yet, and will join in the mode the running nodes announce).
    var requireEveryPeer = true

    /// What one node learned.
    struct Report: Codable {
        struct Check: Codable {
            var name: String
            var passed: Bool
            var detail: String
        }
        /// A node that already runs lbnode (its heartbeats came in), and the delivery mode its heartbeats name.
        struct RunningNode: Codable, Equatable {
            var node: UInt16
            var delivery: Delivery?
            var leader: Bool
        }
        var farm: String
        var node: UInt16
        var checks: [Check]
        /// The cheapest delivery mode that works for every node heard (flood, directed, relay), or nil.
        var delivery: Delivery?
        var vipInUse: Bool
        var explanation: String
        /// The peers whose probe messages came in.
        var heard: [UInt16] = []
        var running: [RunningNode] = []
    }

    /// The message on the heartbeat port, signed with the farm key: "VFPR", the HMAC, then JSON.
    struct Message: Codable {
        var farm: String
        var sender: UInt16
        var mtu: UInt32
        var heard: [UInt16]
        var sawFlood: [UInt16]
        var sawForged: [UInt16]
        var sawLearned: [UInt16]
        /// The sender's own verdict ("flood", "directed", "relay" or "none"), once its time is over.
        var verdict: String? = nil
    }

    /// How long a node waits for configured peers that have not started probing: people start `lbnode probe` on each
    /// server by hand, seconds apart.
    var startSkewMilliseconds = 10_000
    /// The most datagrams one turn reads from the heartbeat port (a flood must not hold the probe's rounds back).
    static let datagramsPerTurn = 256

    func run() throws -> Report {
        let me = config.node.id.rawValue
        let peers = config.peers
        let link = try NetlinkSocket().requireLink(named: config.node.interface)
        let ownMAC = link.mac.map { macValue($0.bytes) } ?? 0
        let frames = try ProbeFrames(
            interface: config.node.interface, ownMAC: ownMAC, farm: config.farm.name, me: me,
            peers: Set(peers.map(\.id.rawValue)))
        let address = config.node.ip
        let udp = try Socket(for: address, type: SOCK_DGRAM, nonBlocking: true)
        try udp.setOption(SOL_SOCKET, SO_REUSEADDR, 1, "share the heartbeat port")
        // TTL 255, as heartbeats: a running node's kernel filter takes nothing else (the probe's heartbeats are its
        // challenges).
        if address.isIPv4 {
            try udp.setOption(Int32(IPPROTO_IP), IP_TTL, 255, "send with TTL 255")
        } else {
            try udp.setOption(Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, 255, "send with hop limit 255")
        }
        try udp.bind(address, port: config.farm.heartbeatPort)
        var challenge = ProbeChallenge(me: config.node.id)
        let vipProbe = try VIPConflictProbe(interface: config.node.interface, vip: config.farm.vip, ownMAC: ownMAC)
        let heartbeatKeys = keys.map { SymmetricKey(data: $0) }

        var heard: [UInt16: Message] = [:]
        /// When each peer's first message came (ms since the start).
        var firstHeard: [UInt16: Int] = [:]
        var running: [UInt16: Report.RunningNode] = [:]
        var vipAnswers = Set<UInt64>()
        var verdict: String?
        let clock = ContinuousClock()
        let start = clock.now
        func elapsed() -> Int { (clock.now - start).wholeMilliseconds }
        let window = Int(seconds * 1000)
        /// When to judge: a whole window after the last peer started probing (so each pair had a window of frames),
        /// and, while a configured peer has not been heard, not before it had `startSkewMilliseconds` to start.
        func judgeAt() -> Int {
            let everyone = peers.allSatisfy { heard[$0.id.rawValue] != nil }
            let waitForOthers = requireEveryPeer && !everyone ? startSkewMilliseconds : 0
            return max(window, (firstHeard.values.max() ?? 0) + window, waitForOthers + window)
        }
        var end = Int.max
        var nextRound = 0
        var round = 0
        while elapsed() < end {
            if elapsed() >= nextRound {
                round += 1
                nextRound = elapsed() + 100
                frames.sendRound()
                if round <= 3 { vipProbe.send() }  // three probes, 100 ms apart (RFC 5227, RFC 4862)
                let message = Message(
                    farm: config.farm.name, sender: me, mtu: link.mtu, heard: heard.keys.sorted(),
                    sawFlood: frames.saw(.flood).sorted(), sawForged: frames.saw(.forged).sorted(),
                    sawLearned: frames.saw(.learned).sorted(), verdict: verdict)
                let signed = Self.sign(message, key: keys[0])
                let beat = challenge.nextHeartbeat(at: elapsed(), weight: config.node.weight, mac: ownMAC)
                    .encoded(key: heartbeatKeys[0])
                for peer in peers {
                    for datagram in [signed, beat] {
                        udp.send(datagram, to: peer.ip, port: config.farm.heartbeatPort)
                    }
                }
            }
            frames.receive(now: elapsed(), waitMilliseconds: 5)
            vipAnswers.formUnion(vipProbe.answers())
            var buffer = [UInt8](repeating: 0, count: 4096)
            for _ in 0..<Self.datagramsPerTurn {
                guard let (count, source) = (buffer.withUnsafeMutableBytes { try? udp.receiveFrom(into: $0) }) ?? nil,
                    count > 0
                else { break }
                let datagram = Array(buffer[0..<count])
                if let message = Self.verify(datagram, key: keys[0]), message.farm == config.farm.name,
                    peers.contains(where: { $0.id.rawValue == message.sender })
                {
                    if heard[message.sender] == nil { firstHeard[message.sender] = elapsed() }
                    heard[message.sender] = message
                } else if let heartbeat = challenge.runningNode(
                    datagram, from: source, keys: heartbeatKeys, peers: peers, now: elapsed())
                {
                    // A node that runs: a few more rounds hear the others (and the leader), then the probe is over.
                    if running.isEmpty { end = min(end, elapsed() + 300) }
                    running[heartbeat.sender.rawValue] = Report.RunningNode(
                        node: heartbeat.sender.rawValue, delivery: heartbeat.delivery,
                        leader: heartbeat.leader)
                }
            }
            if verdict == nil && elapsed() >= judgeAt() {
                verdict =
                    report(heard: heard, frames: frames, mtu: link.mtu, vipAnswers: []).delivery?.rawValue ?? "none"
                end = min(end, elapsed() + (heard.isEmpty ? 0 : window))  // wait for the others' verdicts
            }
            if verdict != nil && heard.values.allSatisfy({ $0.verdict != nil }) && running.isEmpty {
                // Every peer heard has its verdict: one more round so that they have this node's too.
                end = min(end, max(elapsed(), nextRound) + 1)
            }
        }
        var report = report(heard: heard, frames: frames, mtu: link.mtu, vipAnswers: vipAnswers)
        report.running = running.values.sorted { $0.node < $1.node }
        combine(&report, verdicts: heard.compactMapValues { $0.verdict.map(Delivery.init(rawValue:)) })
        return report
    }

    /// The farm's verdict: the costliest of this node's and its peers' (a pair one of them cannot use rules a mode out
    /// for the whole farm). A peer's nil verdict (no mode works there) is costlier than any mode.
    func combine(_ report: inout Report, verdicts: [UInt16: Delivery?]) {
        guard let own = report.delivery else { return }
        func costlier(_ verdict: Delivery?, than other: Delivery?) -> Bool {
            guard let verdict else { return other != nil }
            return other.map { verdict > $0 } ?? false
        }
        let costliest = verdicts.max { costlier($1.value, than: $0.value) }
        guard let (node, theirs) = costliest, costlier(theirs, than: own) else { return }
        report.delivery = theirs
        report.explanation +=
            "; but node \(node) found \(theirs?.rawValue ?? "no mode") works between it and "
            + "its peers: \(theirs?.rawValue ?? "none") for the farm"
    }

    /// This node's verdicts from what it saw (`frames`) and what its peers said they saw (`heard`).
    func report(heard: [UInt16: Message], frames: ProbeFrames, mtu: UInt32, vipAnswers: Set<UInt64>) -> Report {
        let me = config.node.id.rawValue
        let peers = requireEveryPeer ? config.peers.map(\.id.rawValue).sorted() : heard.keys.sorted()
        /// The peers for which `here` (what this node saw from them) or `there` (what they saw of this node) fails.
        func failing(_ here: Set<UInt16>, _ there: (Message) -> [UInt16]) -> [String] {
            peers.flatMap { peer -> [String] in
                var missing: [String] = []
                if !here.contains(peer) { missing.append("\(peer)->\(me)") }
                if !(heard[peer].map { there($0).contains(me) } ?? false) { missing.append("\(me)->\(peer)") }
                return missing
            }
        }
        /// With no peer probing nothing about the switch can be told: its checks say so instead of blaming it.
        let alone = heard.isEmpty
        func check(_ name: String, _ missing: [String], passed: String, failed: String, ofSwitch: Bool = true)
            -> Report.Check
        {
            if alone && ofSwitch {
                return Report.Check(name: name, passed: false, detail: "not judged: no peer is probing")
            }
            return Report.Check(
                name: name, passed: missing.isEmpty,
                detail: missing.isEmpty ? passed : "\(failed): \(missing.joined(separator: ", "))")
        }
        let heartbeats = check(
            "heartbeats both ways", failing(Set(heard.keys), \.heard),
            passed: "UDP \(config.farm.heartbeatPort) to and from every peer, authenticated",
            failed: alone
                ? "no peer is probing (run lbnode probe on every node within \(startSkewMilliseconds / 1000) s)"
                : "not heard (firewall on UDP \(config.farm.heartbeatPort), another key, or the peer is not probing)",
            ofSwitch: false)
        let flooding = check(
            "unknown unicast flooded", failing(frames.saw(.flood), \.sawFlood),
            passed: "a frame to a MAC nobody sends from reached every node", failed: "not flooded")
        let forged = check(
            "foreign source MAC accepted", failing(frames.saw(.forged), \.sawForged),
            passed: "a frame from a MAC that is not the NIC's left every node", failed: "dropped by the switch")
        let learned = check(
            "foreign source MAC learned", failing(frames.saw(.learned), \.sawLearned),
            passed: "frames to such a MAC reach the node that sent from it", failed: "not delivered")
        let mtus = Set([mtu] + heard.values.map(\.mtu))
        let mtuCheck = Report.Check(
            name: "MTUs agree", passed: mtus.count == 1 && heard.count == peers.count,
            detail: mtus.count == 1
                ? "\(mtu) on \(heard.count == peers.count ? "every node" : "the nodes heard")"
                : "differ: "
                    + ([(me, mtu)] + heard.map { ($0.key, $0.value.mtu) }).sorted { $0.0 < $1.0 }
                    .map { "node \($0.0) \($0.1)" }.joined(separator: ", "))
        let vip = Report.Check(
            name: "VIP free", passed: vipAnswers.isEmpty,
            detail: vipAnswers.isEmpty
                ? "no answer to \(config.farm.vip.isIPv4 ? "ARP probes" : "duplicate address detection") for "
                    + config.farm.vip.address.description
                : "\(config.farm.vip.address) is in use by \(vipAnswers.map(macText).sorted().joined(separator: ", "))")
        let delivery: Delivery?
        let explanation: String
        if alone {
            delivery = nil
            explanation =
                "no peer is probing: start lbnode probe on the other nodes too, within "
                + "\(startSkewMilliseconds / 1000) s of this one (lbnode run must not be running there)"
        } else if !heartbeats.passed {
            delivery = nil
            explanation = "no delivery works until heartbeats pass both ways between every pair of nodes"
        } else if flooding.passed {
            delivery = .flood
            explanation = "the switch floods unknown unicast: flood, the cheapest (directed and relay work too)"
        } else if forged.passed && learned.passed {
            delivery = .directed
            explanation =
                "no flooding, but the switch accepts and learns a server's second MAC: directed (relay works too)"
        } else {
            delivery = .relay
            explanation =
                "the switch neither floods unknown unicast nor \(forged.passed ? "learns" : "accepts") a second MAC "
                + "per port (a strict virtual switch): relay, which needs neither"
        }
        return Report(
            farm: config.farm.name, node: me, checks: [heartbeats, flooding, forged, learned, mtuCheck, vip],
            delivery: delivery, vipInUse: !vipAnswers.isEmpty, explanation: explanation, heard: heard.keys.sorted())
    }

    static func sign(_ message: Message, key: Data) -> [UInt8] {
        let json = Array((try? JSONEncoder().encode(message)) ?? Data())
        return Array("VFPR".utf8) + Array(HMAC<SHA256>.authenticationCode(for: json, using: SymmetricKey(data: key)))
            + json
    }

    static func verify(_ bytes: [UInt8], key: Data) -> Message? {
        guard bytes.count > 36, Array(bytes[0..<4]) == Array("VFPR".utf8),
            HMAC<SHA256>.isValidAuthenticationCode(
                bytes[4..<36], authenticating: bytes[36...], using: SymmetricKey(data: key))
        else { return nil }
        return try? JSONDecoder().decode(Message.self, from: Data(bytes[36...]))
    }
}
