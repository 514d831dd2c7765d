import Hashing
import TapEngine

/// The frames by which the nodes find out what the switch between them lets through. `lbnode probe` (and `delivery:
/// auto` at start) sends a round every 100 ms for a few seconds; `lbnode run` sends one a second, so that a network
/// that changed under a running farm is noticed (`DeliveryWatch`). A round is:
///
/// - `flood`: a frame to the farm's probe MAC, a unicast MAC nobody ever sends from (so no switch learns it): it
///   reaches the others only if the switch floods unknown unicast (`flood` delivery needs that);
/// - `forged`: a broadcast from the node's own probe MAC, which is not its NIC's: it reaches the others only if the
///   switch accepts a foreign source MAC (forged transmits, MAC changes), and then the switch learns it on the port;
/// - `learned`: to each peer whose `forged` broadcast arrived, a frame to that peer's probe MAC: it arrives if the
///   switch learned the MAC (or floods). `directed` delivery needs these two, or flooding.
///
/// Not thread-safe: one thread at a time (`lbnode run` reads and sends them on `BackgroundCheck`'s queue, one look at
/// a time).
final class ProbeFrames: @unchecked Sendable {
    enum Kind: UInt8, CaseIterable {
        case flood = 0x46  // "F"
        case forged = 0x56  // "V"
        case learned = 0x55  // "U"
    }

    static let etherType: UInt16 = 0x88B5  // IEEE 802 local experimental
    private static let tag = Array("VFP".utf8)

    /// The farm's probe MAC for flooding, and node `id`'s foreign source MAC: locally administered, from the farm.
    static func floodMAC(farm: String) -> UInt64 {
        0x0600_0000_0000 | (FarmSeed(farmName: farm).value & 0xFF_FFFF_FF00)
    }
    static func forgedMAC(farm: String, node: UInt16) -> UInt64 {
        0x0A00_0000_0000 | (FarmSeed(farmName: farm).value & 0xFF_FF00_0000) | UInt64(node)
    }

    let me: UInt16
    let peers: Set<UInt16>
    private let farm: String
    private let ownMAC: UInt64
    private let port: ProbePort
    /// When (ms, the caller's clock) a frame of each kind last came from each peer.
    private(set) var lastSeen: [Kind: [UInt16: Int]] = [:]

    /// - Throws: `SystemCallError` (the packet socket).
    init(interface: String, ownMAC: UInt64, farm: String, me: UInt16, peers: Set<UInt16>) throws {
        self.me = me
        self.peers = peers
        self.farm = farm
        self.ownMAC = ownMAC
        port = try ProbePort(
            interface: interface, etherType: Self.etherType,
            receiving: [Self.floodMAC(farm: farm), Self.forgedMAC(farm: farm, node: me)], tag: Self.tag)
    }

    /// The peers a frame of `kind` came from (ever).
    func saw(_ kind: Kind) -> Set<UInt16> { Set(lastSeen[kind, default: [:]].keys) }

    /// Sends one round (errors are the network's answer, not the caller's concern: what does not leave does not
    /// arrive, and the verdicts say so).
    func sendRound() {
        let id = [UInt8(me >> 8), UInt8(me & 0xFF)]
        try? port.send(to: Self.floodMAC(farm: farm), from: ownMAC, payload: Self.tag + [Kind.flood.rawValue] + id)
        try? port.send(
            to: 0xFFFF_FFFF_FFFF, from: Self.forgedMAC(farm: farm, node: me),
            payload: Self.tag + [Kind.forged.rawValue] + id)
        for peer in saw(.forged).sorted() {
            try? port.send(
                to: Self.forgedMAC(farm: farm, node: peer), from: ownMAC,
                payload: Self.tag + [Kind.learned.rawValue] + id)
        }
    }

    /// The most frames one call takes in: a round brings a few per peer, and a flood of this EtherType must not hold
    /// the caller (the heartbeat loop) in a loop it cannot leave.
    static let framesPerCall = 256

    /// Takes in what arrived (at most `framesPerCall`), waiting up to `waitMilliseconds` for the first frame.
    func receive(now: Int, waitMilliseconds: Int32 = 0) {
        var wait = waitMilliseconds
        for _ in 0..<Self.framesPerCall {
            guard let frame = port.receive(timeoutMilliseconds: wait) else { return }
            wait = 0
            let payload = frame.payload
            guard payload.count >= 6, payload.prefix(3).elementsEqual(Self.tag),
                let kind = Kind(rawValue: payload[payload.startIndex + 3])
            else { continue }
            let sender = UInt16(payload[payload.startIndex + 4]) << 8 | UInt16(payload[payload.startIndex + 5])
            guard sender != me, peers.contains(sender) else { continue }
            switch kind {
            case .flood where frame.destination != Self.floodMAC(farm: farm): continue
            case .learned where frame.destination != Self.forgedMAC(farm: farm, node: me): continue
            default: lastSeen[kind, default: [:]][sender] = now
            }
        }
    }
}
