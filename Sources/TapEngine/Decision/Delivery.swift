/// How client frames reach the servers (docs/architecture.md), from the cheapest for a farm to the costliest: `auto`
/// takes the cheapest mode the network allows every node.
public enum Delivery: String, Sendable, CaseIterable, Comparable, Codable {
    /// The virtual MAC is never a source MAC, so switches flood its frames to every server; each keeps its own.
    case flood
    /// The director receives every frame, keeps its own and forwards the others to their owner's real MAC.
    case directed
    /// No MAC tricks: the director answers ARP/ND for the VIP with its own NIC's MAC, so clients send to it as to any
    /// host; it keeps its own frames and relays the others from its own MAC to their owners, whose engines deliver
    /// them. For switches that neither flood nor accept a foreign source MAC (strict virtual switches). The kernel's
    /// own path for the VIP on the NIC is closed by an ingress drop (`lbnode setup`).
    case relay

    public static func < (lhs: Delivery, rhs: Delivery) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// `delivery:` in a farm's configuration: a mode, or `auto` (probed when `lbnode run` starts).
public enum DeliverySetting: Sendable, Hashable, CustomStringConvertible {
    case auto
    case fixed(Delivery)

    /// Every setting, as the configuration spells them.
    public static let all: [DeliverySetting] = [.auto] + Delivery.allCases.map(DeliverySetting.fixed)

    /// `auto`, `flood`, `directed` or `relay`; nil for anything else.
    public init?(_ text: String) {
        guard let setting = Self.all.first(where: { $0.description == text }) else { return nil }
        self = setting
    }

    public var description: String {
        switch self {
        case .auto: "auto"
        case .fixed(let delivery): delivery.rawValue
        }
    }

    /// The mode, unless it is still to be probed.
    public var fixed: Delivery? {
        if case .fixed(let delivery) = self { return delivery }
        return nil
    }
}
