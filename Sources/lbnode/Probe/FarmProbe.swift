import Crypto
import Foundation
import Hashing
import RouteSetup
import TapEngine

/// `lbnode probe`: what the network between the farm's servers lets through, before the VIP goes live. Every node
/// runs it at the same time; each sends, several times a second for a few seconds:
///
/// - a frame to the farm's probe MAC, a unicast MAC nobody ever sends from (so no switch learns it): it reaches the
///   others only if the switch floods unknown unicast (`flood` delivery needs that);
/// - a broadcast from its own probe MAC, which is not its NIC's: it reaches the others only if the switch accepts a
///   foreign source MAC (forged transmits, MAC changes), and then the switch learns that MAC on its port;
/// - to each peer whose foreign-source broadcast it saw, a frame to that peer's probe MAC: it arrives if the switch
///   learned it (or floods) (`directed` delivery needs these two, or flooding);
/// - an authenticated message on the heartbeat port to every peer: what it saw, its MTU (`relay` delivery needs
///   only these heartbeats, as every mode does).
///
/// It also sends ARP probes for the VIP (RFC 5227: sender address 0.0.0.0), or for an IPv6 VIP duplicate address
/// detection's neighbour solicitations (RFC 4862), and reports any answer: the VIP in use.
struct FarmProbe {
    let config: FarmConfig
    let key: Data
    var seconds: Double = 3

    static let etherType: UInt16 = 0x88B5  // IEEE 802 local experimental

    /// What one node learned.
    struct Report: Codable {
        struct Check: Codable {
            var name: String
            var passed: Bool
            var detail: String
        }
        var farm: String
        var node: UInt16
        var checks: [Check]
        /// The cheapest delivery mode that works here (flood, directed, relay), or nil.
        var delivery: String?
        var vipInUse: Bool
        var explanation: String
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
    }

    /// The farm's probe MAC for flooding, and node `id`'s foreign source MAC: locally administered, from the farm.
    static func floodMAC(farm: String) -> UInt64 { 0x0600_0000_0000 | (FarmSeed(farmName: farm).value & 0xFF_FFFF_FF00) }
    static func forgedMAC(farm: String, node: UInt16) -> UInt64 {
        0x0A00_0000_0000 | (FarmSeed(farmName: farm).value & 0xFF_FF00_0000) | UInt64(node)
    }

    func run() throws -> Report {
        let me = config.node.id.rawValue
        let peers = config.peers
        let link = try NetlinkSocket().requireLink(named: config.node.interface)
        let ownMAC = link.mac.map { macValue($0.bytes) } ?? 0
        let flood = Self.floodMAC(farm: config.farm.name)
        let forged = Self.forgedMAC(farm: config.farm.name, node: me)
        let port = try ProbePort(interface: config.node.interface, etherType: Self.etherType, receiving: [flood, forged])
        let address = IPAddress(bytes: config.node.address.bytes)!
        let udp = try Socket(for: address, type: SOCK_DGRAM, nonBlocking: true)
        try udp.setOption(SOL_SOCKET, SO_REUSEADDR, 1, "share the heartbeat port")
        try udp.bind(address, port: config.farm.heartbeatPort)
        let vipBytes = config.farm.vip.bytes
        let arp = config.farm.vip.isIPv4 ? try ProbePort(interface: config.node.interface, etherType: 0x0806) : nil
        let solicitedNode = 0x3333_FF00_0000 | macValue(Array(vipBytes.suffix(3)))
        // Duplicate address detection's answers go to all nodes (33:33:00:00:00:01), which every IPv6 host receives.
        let neighbours =
            config.farm.vip.isIPv4
            ? nil : try ProbePort(interface: config.node.interface, etherType: 0x86DD, receiving: [0x3333_0000_0001])

        var heard: [UInt16: Message] = [:]
        var sawFlood = Set<UInt16>()
        var sawForged = Set<UInt16>()
        var sawLearned = Set<UInt16>()
        var vipAnswers: [UInt64] = []
        let tag = Array("VFP".utf8)
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(seconds * 1000))
        var nextRound = clock.now
        var round = 0
        while clock.now < end {
            if clock.now >= nextRound {
                round += 1
                nextRound = clock.now + .milliseconds(100)
                let id = [UInt8(me >> 8), UInt8(me & 0xFF)]
                try? port.send(to: flood, from: ownMAC, payload: tag + [UInt8(ascii: "F")] + id)
                try? port.send(to: 0xFFFF_FFFF_FFFF, from: forged, payload: tag + [UInt8(ascii: "V")] + id)
                for peer in sawForged {
                    try? port.send(
                        to: Self.forgedMAC(farm: config.farm.name, node: peer), from: ownMAC,
                        payload: tag + [UInt8(ascii: "U")] + id)
                }
                if let neighbours, round <= 3 {  // three duplicate address detection probes (RFC 4862)
                    try? neighbours.send(
                        to: solicitedNode, from: ownMAC, payload: Self.neighbourSolicitation(for: vipBytes))
                }
                if let arp, round <= 3 {  // three ARP probes, 100 ms apart
                    let vip = config.farm.vip.bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    try? arp.send(
                        to: 0xFFFF_FFFF_FFFF, from: ownMAC,
                        payload: Array(
                            PacketBuilder.arp(
                                operation: 1, ethernetSource: ownMAC, ethernetDestination: 0xFFFF_FFFF_FFFF,
                                senderMAC: ownMAC, senderIP: 0, targetMAC: 0, targetIP: vip
                            ).dropFirst(14)))
                }
                let message = Message(
                    farm: config.farm.name, sender: me, mtu: link.mtu, heard: heard.keys.sorted(),
                    sawFlood: sawFlood.sorted(), sawForged: sawForged.sorted(), sawLearned: sawLearned.sorted())
                let signed = Self.sign(message, key: key)
                for peer in peers {
                    udp.send(signed, to: IPAddress(bytes: peer.address.bytes)!, port: config.farm.heartbeatPort)
                }
            }
            while let frame = port.receive(timeoutMilliseconds: 5) {
                let payload = Array(frame.payload)
                guard payload.count >= 6, Array(payload[0..<3]) == tag else { continue }
                let sender = UInt16(payload[4]) << 8 | UInt16(payload[5])
                guard sender != me, peers.contains(where: { $0.id.rawValue == sender }) else { continue }
                switch payload[3] {
                case UInt8(ascii: "F") where frame.destination == flood: sawFlood.insert(sender)
                case UInt8(ascii: "V"): sawForged.insert(sender)
                case UInt8(ascii: "U") where frame.destination == forged: sawLearned.insert(sender)
                default: break
                }
            }
            while let frame = arp?.receive(timeoutMilliseconds: 0) {
                // Any ARP packet sent from the VIP (a reply to the probes, an announcement): someone holds it
                // (RFC 5227). The other nodes' probes (sender 0.0.0.0) are not conflicts.
                let bytes = Array(frame.payload)
                if bytes.count >= 28, Array(bytes[14..<18]) == config.farm.vip.bytes { vipAnswers.append(frame.source) }
            }
            while let frame = neighbours?.receive(timeoutMilliseconds: 0) {
                // A neighbour advertisement (ICMPv6 136) for the VIP: someone holds it.
                let bytes = Array(frame.payload)
                if bytes.count >= 64, bytes[6] == 58, bytes[40] == 136, Array(bytes[48..<64]) == vipBytes {
                    vipAnswers.append(frame.source)
                }
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while let count = (buffer.withUnsafeMutableBytes { try? udp.receive(into: $0) }) ?? nil, count > 0 {
                if let message = Self.verify(Array(buffer[0..<count]), key: key), message.farm == config.farm.name,
                    peers.contains(where: { $0.id.rawValue == message.sender })
                {
                    heard[message.sender] = message
                }
            }
        }
        return report(
            heard: heard, sawFlood: sawFlood, sawForged: sawForged, sawLearned: sawLearned, mtu: link.mtu,
            vipAnswers: Set(vipAnswers))
    }

    /// The verdicts from what this node saw and what its peers said they saw.
    func report(
        heard: [UInt16: Message], sawFlood: Set<UInt16>, sawForged: Set<UInt16>, sawLearned: Set<UInt16>, mtu: UInt32,
        vipAnswers: Set<UInt64>
    ) -> Report {
        let me = config.node.id.rawValue
        let peers = config.peers.map(\.id.rawValue).sorted()
        /// The peers for which `here` (what this node saw from them) or `there` (what they saw of this node) fails.
        func failing(_ here: Set<UInt16>, _ there: (Message) -> [UInt16]) -> [String] {
            peers.flatMap { peer -> [String] in
                var missing: [String] = []
                if !here.contains(peer) { missing.append("\(peer)->\(me)") }
                if !(heard[peer].map { there($0).contains(me) } ?? false) { missing.append("\(me)->\(peer)") }
                return missing
            }
        }
        func check(_ name: String, _ missing: [String], passed: String, failed: String) -> Report.Check {
            Report.Check(
                name: name, passed: missing.isEmpty,
                detail: missing.isEmpty ? passed : "\(failed): \(missing.joined(separator: ", "))")
        }
        let heartbeats = check(
            "heartbeats both ways", failing(Set(heard.keys), \.heard),
            passed: "UDP \(config.farm.heartbeatPort) to and from every peer, authenticated",
            failed: "not heard (firewall on UDP \(config.farm.heartbeatPort), another key, or the peer is not probing)")
        let flooding = check(
            "unknown unicast flooded", failing(sawFlood, \.sawFlood),
            passed: "a frame to a MAC nobody sends from reached every node", failed: "not flooded")
        let forged = check(
            "foreign source MAC accepted", failing(sawForged, \.sawForged),
            passed: "a frame from a MAC that is not the NIC's left every node", failed: "dropped by the switch")
        let learned = check(
            "foreign source MAC learned", failing(sawLearned, \.sawLearned),
            passed: "frames to such a MAC reach the node that sent from it", failed: "not delivered")
        let mtus = Set([mtu] + heard.values.map(\.mtu))
        let mtuCheck = Report.Check(
            name: "MTUs agree", passed: mtus.count == 1 && heard.count == peers.count,
            detail: mtus.count == 1
                ? "\(mtu) on \(heard.count == peers.count ? "every node" : "the nodes heard")"
                : "differ: " + ([(me, mtu)] + heard.map { ($0.key, $0.value.mtu) }).sorted { $0.0 < $1.0 }
                    .map { "node \($0.0) \($0.1)" }.joined(separator: ", "))
        let vip = Report.Check(
            name: "VIP free", passed: vipAnswers.isEmpty,
            detail: vipAnswers.isEmpty
                ? "no answer to \(config.farm.vip.isIPv4 ? "ARP probes" : "duplicate address detection") for "
                    + config.farm.vip.address.description
                : "\(config.farm.vip.address) is in use by \(vipAnswers.map(macText).sorted().joined(separator: ", "))")
        let delivery: String?
        let explanation: String
        if !heartbeats.passed {
            delivery = nil
            explanation = "no delivery works until heartbeats pass both ways between every pair of nodes"
        } else if flooding.passed {
            delivery = "flood"
            explanation = "the switch floods unknown unicast: flood, the cheapest (directed and relay work too)"
        } else if forged.passed && learned.passed {
            delivery = "directed"
            explanation = "no flooding, but the switch accepts and learns a server's second MAC: directed (relay works too)"
        } else {
            delivery = "relay"
            explanation =
                "the switch neither floods unknown unicast nor \(forged.passed ? "learns" : "accepts") a second MAC "
                + "per port (a strict virtual switch): relay, which needs neither"
        }
        return Report(
            farm: config.farm.name, node: me, checks: [heartbeats, flooding, forged, learned, mtuCheck, vip],
            delivery: delivery, vipInUse: !vipAnswers.isEmpty, explanation: explanation)
    }

    /// A duplicate address detection probe for `target`: a neighbour solicitation from the unspecified address to
    /// the target's solicited-node group, without a source link-layer option (RFC 4862), hop limit 255.
    static func neighbourSolicitation(for target: [UInt8]) -> [UInt8] {
        let group: [UInt8] = [0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF] + target[13...]
        var icmp: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0] + target
        // Checksum over the pseudo-header (source ::, destination, length, next header 58) and the message.
        let pseudo = [UInt8](repeating: 0, count: 16) + group + [0, 0, 0, UInt8(icmp.count), 0, 0, 0, 58]
        let sum = PacketBuilder.internetChecksum(pseudo + icmp)
        icmp[2] = UInt8(sum >> 8)
        icmp[3] = UInt8(sum & 0xFF)
        return [0x60, 0, 0, 0, 0, UInt8(icmp.count), 58, 255] + [UInt8](repeating: 0, count: 16) + group + icmp
    }

    static func sign(_ message: Message, key: Data) -> [UInt8] {
        let json = Array((try? JSONEncoder().encode(message)) ?? Data())
        return Array("VFPR".utf8) + Array(HMAC<SHA256>.authenticationCode(for: json, using: SymmetricKey(data: key)))
            + json
    }

    static func verify(_ bytes: [UInt8], key: Data) -> Message? {
        guard bytes.count > 36, Array(bytes[0..<4]) == Array("VFPR".utf8),
            HMAC<SHA256>.isValidAuthenticationCode(bytes[4..<36], authenticating: bytes[36...], using: SymmetricKey(data: key))
        else { return nil }
        return try? JSONDecoder().decode(Message.self, from: Data(bytes[36...]))
    }
}
