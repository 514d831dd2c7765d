import RouteSetup
import TapEngine

/// Whether anyone already holds the VIP on the segment, asked as a host that wants an address asks: ARP probes
/// (RFC 5227: sender address 0.0.0.0, so nobody's cache learns anything) for an IPv4 VIP, duplicate address detection's
/// neighbour solicitations (RFC 4862) for an IPv6 one. Any answer from the VIP names a holder.
final class VIPConflictProbe {
    private let vip: IPPrefix
    private let ownMAC: UInt64
    private let port: ProbePort

    /// - Throws: `SystemCallError` (the packet socket).
    init(interface: String, vip: IPPrefix, ownMAC: UInt64) throws {
        self.vip = vip
        self.ownMAC = ownMAC
        // Duplicate address detection's answers go to all nodes (33:33:00:00:00:01), which every IPv6 host receives.
        port =
            vip.isIPv4
            ? try ProbePort(interface: interface, etherType: 0x0806)
            : try ProbePort(interface: interface, etherType: 0x86DD, receiving: [0x3333_0000_0001])
    }

    /// Sends one probe (the caller sends three, 100 ms apart).
    func send() {
        if vip.isIPv4 {
            let target = vip.bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let arp = PacketBuilder.arp(
                operation: 1, ethernetSource: ownMAC, ethernetDestination: 0xFFFF_FFFF_FFFF, senderMAC: ownMAC,
                senderIP: 0, targetMAC: 0, targetIP: target)
            try? port.send(to: 0xFFFF_FFFF_FFFF, from: ownMAC, payload: Array(arp.dropFirst(14)))
        } else {
            let solicitedNode = 0x3333_FF00_0000 | macValue(Array(vip.bytes.suffix(3)))
            try? port.send(to: solicitedNode, from: ownMAC, payload: Self.neighbourSolicitation(for: vip.bytes))
        }
    }

    /// The MACs that answered for the VIP since the last call. For IPv4 any ARP packet sent from the VIP (a reply to
    /// the probes, an announcement); the other nodes' probes (sender 0.0.0.0) are not conflicts. For IPv6 a neighbour
    /// advertisement (ICMPv6 136) for the VIP.
    func answers() -> Set<UInt64> {
        var holders = Set<UInt64>()
        while let frame = port.receive(timeoutMilliseconds: 0) {
            let bytes = Array(frame.payload)
            if vip.isIPv4 {
                if bytes.count >= 28, Array(bytes[14..<18]) == vip.bytes { holders.insert(frame.source) }
            } else if bytes.count >= 64, bytes[6] == 58, bytes[40] == 136, Array(bytes[48..<64]) == vip.bytes {
                holders.insert(frame.source)
            }
        }
        return holders
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

}
