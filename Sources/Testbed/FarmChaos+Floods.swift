import Foundation
import Glibc
import Hashing
import RouteSetup
import TapEngine

/// Floods of frames that are not heartbeats: the measurement every flood scenario shares, and the frames of the
/// EtherType and ICMP floods.
extension FarmChaos {
    /// Sends the frames `build` makes (called once the requests flow, so the client knows the VIP's MAC) from the
    /// client at the generator's full speed for `floodSeconds` while requests flow: no view may change and no request
    /// be lost or answered twice.
    func underFlood(_ scenario: ChaosScenario, _ build: () throws -> [[UInt8]]) throws -> ChaosOutcome {
        let client = farm.testbed.clients[0]
        let changesBefore = viewChanges()
        var sent = 0
        let records = try whileRequestsFlow { _ in
            let frames = try build()
            sent = try client.namespace.run { () throws(NetlinkError) in
                Result { () throws(SystemCallError) in
                    try FrameBlaster(interface: VirtualNetwork.hostInterface, frames: frames)
                        .run(seconds: floodSeconds, rate: 0)
                }
            }.get()
        }
        let changes = viewChanges() - changesBefore
        var outcome = ChaosOutcome(scenario: scenario, passed: true, tally: ProbeTally(records))
        outcome.figures = [
            "view_changes": Double(changes), "lost": Double(outcome.tally.lost), "attack_frames": Double(sent),
            "attack_pps": Double(sent) / floodSeconds,
        ]
        if changes != 0 { outcome.failures.append("\(changes) view changes during the flood") }
        if Double(outcome.tally.lost) > Double(outcome.tally.sent) * floodLossAllowance {
            outcome.failures.append("\(outcome.tally.lost) requests lost")
        }
        if outcome.tally.duplicates != 0 { outcome.failures.append("\(outcome.tally.duplicates) duplicate answers") }
        outcome.passed = outcome.failures.isEmpty
        return outcome
    }

    /// The VIP's MAC as the client has it (the virtual MAC in flood delivery, the director's otherwise).
    private func vipMAC() throws -> UInt64 {
        let mac = try farm.testbed.clients[0].namespace.run { () throws(NetlinkError) in Self.neighbourMAC(of: farm.vip) }
        guard let mac else { throw FarmError("the client has no neighbour entry for the VIP \(farm.vip)") }
        return mac
    }

    /// Random payloads of EtherTypes that are neither IP nor ARP, to the VIP's MAC; and the nodes' probe EtherType
    /// (0x88B5) to broadcast, half of them with the probe tag and a made-up node.
    func etherTypeFloodFrames() throws -> [[UInt8]] {
        let vipMAC = try vipMAC()
        let clientMAC = farm.testbed.clients[0].macValue
        let others: [UInt16] = [0x88B5, 0x88CC, 0x8809, 0x9000, 0x1234, 0x88E5, 0x8847, 0x0842]
        return (0..<768).map { index in
            var payload = (0..<46).map { _ in UInt8.random(in: 0...255) }
            if index % 3 == 0 {
                if index % 2 == 0 { payload.replaceSubrange(0..<6, with: Array("VFP".utf8) + [0x46, 0, 9]) }
                return PacketBuilder.ethernet(destination: 0xFFFF_FFFF_FFFF, source: clientMAC, etherType: 0x88B5)
                    + payload
            }
            return PacketBuilder.ethernet(destination: vipMAC, source: clientMAC, etherType: others[index % others.count])
                + payload
        }
    }

    /// Echo requests to the VIP from random sources of the segment (each node's kernel answers those of its
    /// buckets), and, from the witness's address to node 1, echo replies with made-up identifiers and echo requests:
    /// the witness socket sees only those, and takes none.
    func icmpFloodFrames() throws -> [[UInt8]] {
        let vipMAC = try vipMAC()
        let client = farm.testbed.clients[0]
        let clientMAC = client.macValue
        let witness = client.ip
        let node = farm.testbed.servers[0]
        func echo(type: UInt8) -> [UInt8] {
            var message: [UInt8] = [type, 0, 0, 0] + (0..<28).map { _ in UInt8.random(in: 0...255) }
            let sum = PacketBuilder.internetChecksum(message)
            message[2] = UInt8(sum >> 8)
            message[3] = UInt8(sum & 0xFF)
            return message
        }
        return (0..<1024).map { index in
            if index % 4 == 0 {
                return PacketBuilder.ip(
                    destinationMAC: node.macValue, sourceMAC: clientMAC, source: witness,
                    destination: node.ip, protocol: 1, payload: echo(type: index % 8 == 0 ? 0 : 8))
            }
            return PacketBuilder.ip(
                destinationMAC: vipMAC, sourceMAC: clientMAC,
                source: IPAddress(ipv4: 0xC613_0000 | UInt32.random(in: 0x0100...0xFFFE)),
                destination: farm.vip, protocol: 1, payload: echo(type: 8))
        }
    }
}
