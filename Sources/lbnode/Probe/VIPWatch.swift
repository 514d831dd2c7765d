import Foundation
import RouteSetup
import TapEngine

/// Watches, while the node runs, for another host that answers for the VIP (a server given the address by mistake, the
/// leftover of a migration): clients whose ARP or neighbour entry names it reach that host instead of the farm. Every
/// `intervalMilliseconds`, on a thread of its own, it asks as a host that wants the address asks (`VIPConflictProbe`:
/// nobody's cache learns anything) and keeps the MACs that answered but are not the farm's.
final class VIPWatch {
    static let intervalMilliseconds = 10_000
    /// How often the same holder is logged again while it lasts.
    static let repeatMilliseconds = 600_000
    private let vip: IPPrefix
    private let check: BackgroundCheck<Set<UInt64>>
    private var nextCheck: Int
    private var judged: Int?
    private var lastLogged: [UInt64: Int] = [:]
    /// The hosts other than the farm's nodes that answered for the VIP at the last look.
    private(set) var holders: Set<UInt64> = []

    init(interface: String, vip: IPPrefix, ownMAC: UInt64, now: Int) {
        self.vip = vip
        nextCheck = now + 2000  // after the farm's first ARP announcements
        check = BackgroundCheck(label: "vip-watch") {
            guard let probe = try? VIPConflictProbe(interface: interface, vip: vip, ownMAC: ownMAC) else { return [] }
            var answers = Set<UInt64>()
            for _ in 0..<3 {  // RFC 5227: three probes, 100 ms apart
                probe.send()
                Thread.sleep(forTimeInterval: 0.1)
                answers.formUnion(probe.answers())
            }
            Thread.sleep(forTimeInterval: 0.2)
            return answers.union(probe.answers())
        }
    }

    /// Starts a look when one is due, and judges the last one against `farmMACs` (the virtual MAC and the nodes' own):
    /// the lines to log, an error for a holder first seen (again every ten minutes while it lasts) and a notice when
    /// none is left.
    func step(now: Int, farmMACs: @autoclosure () -> Set<UInt64>) -> [String] {
        if now >= nextCheck {
            nextCheck = now + Self.intervalMilliseconds
            check.start(now: now)
        }
        guard let latest = check.latest, latest.startedAt != judged else { return [] }
        judged = latest.startedAt
        let found = latest.value.subtracting(farmMACs())
        var lines: [String] = []
        for holder in found.sorted() where now - (lastLogged[holder] ?? Int.min / 2) >= Self.repeatMilliseconds {
            lastLogged[holder] = now
            lines.append(
                "the VIP \(vip) is also answered by \(Self.text(holder)), not a node of this farm: clients whose "
                    + "neighbour entry names it reach that host instead; remove the VIP there")
        }
        if found.isEmpty && !holders.isEmpty {
            lines.append("the VIP \(vip) is answered by the farm alone again")
            lastLogged = [:]
        }
        holders = found
        return lines
    }

    static func text(_ mac: UInt64) -> String { HardwareAddress(bytes: PacketBuilder.macBytes(mac))!.description }
}
