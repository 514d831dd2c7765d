/// Why the engine did not deliver a frame: an index into a fixed counter array (katran's verdict-and-counter).
/// Malformed frames are counted here and dropped; they never stop the engine.
public enum DropReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    case truncatedEthernet
    case truncatedVLAN
    case unsupportedEtherType
    case truncatedARP
    case unsupportedARP
    case truncatedIPv4
    case badIPv4Header
    case truncatedIPv6
    case badIPv6ExtensionHeader
    case truncatedTransport
    case badTransportHeader
    /// A frame the ring cut short (longer than 64 KB: BIG TCP merging beyond the filter's snapshot length).
    case truncatedByRing
    /// A frame tagged for another VLAN than the interface's own (the kernel moved the tag into the ring's metadata).
    case otherVLAN
    /// An IP packet that is not addressed to the VIP.
    case notForVIP
    /// An ARP or neighbour request for another address, or a reply.
    case otherARP
    /// ARP for the VIP while another node is the ARP leader.
    case notARPLeader
    /// Directed mode: only the director handles frames for the virtual MAC.
    case notDirector
    /// A port rule says drop.
    case ruleDrop
    /// The bucket (or the single rule) belongs to another node.
    case notOwner
    /// A TCP frame of an established flow in a bucket this node is taking over: the old owner still serves it.
    case handoverEstablished
    /// No table yet (the view is empty).
    case noOwner
    /// The TAP write failed (counted; the frame is lost).
    case tapWriteFailed
    /// Forwarding to the owner (directed mode) failed.
    case forwardFailed
    /// A bucket this node is taking from a live node, before that node has confirmed the move (flood mode).
    case handoverPending
    /// The control plane did not renew the engine's lease in time (it stalled): nothing is served until it does.
    case fenced
    /// Relay mode: a frame for the VIP sent to another node's MAC (a switch flooded it here).
    case otherHost
    /// An ARP request or neighbour solicitation for the VIP beyond the answers' budget (`AnswerBudget`): a flood.
    case answerRateLimited
    /// An ICMP echo request (ping) to the VIP beyond the echo budget: a ping flood, dropped before the server's kernel
    /// answers it.
    case echoRateLimited

    public var description: String {
        switch self {
        case .truncatedEthernet: "truncated_ethernet"
        case .truncatedVLAN: "truncated_vlan"
        case .unsupportedEtherType: "unsupported_ethertype"
        case .truncatedARP: "truncated_arp"
        case .unsupportedARP: "unsupported_arp"
        case .truncatedIPv4: "truncated_ipv4"
        case .badIPv4Header: "bad_ipv4_header"
        case .truncatedIPv6: "truncated_ipv6"
        case .badIPv6ExtensionHeader: "bad_ipv6_extension_header"
        case .truncatedTransport: "truncated_transport"
        case .badTransportHeader: "bad_transport_header"
        case .truncatedByRing: "truncated_by_ring"
        case .otherVLAN: "other_vlan"
        case .notForVIP: "not_for_vip"
        case .otherARP: "other_arp"
        case .notARPLeader: "not_arp_leader"
        case .notDirector: "not_director"
        case .ruleDrop: "rule_drop"
        case .notOwner: "not_owner"
        case .handoverEstablished: "handover_established"
        case .noOwner: "no_owner"
        case .tapWriteFailed: "tap_write_failed"
        case .forwardFailed: "forward_failed"
        case .handoverPending: "handover_pending"
        case .fenced: "fenced"
        case .otherHost: "other_host"
        case .answerRateLimited: "answer_rate_limited"
        case .echoRateLimited: "echo_rate_limited"
        }
    }

    /// Whether the frame itself was malformed (as opposed to well-formed but not this node's).
    public var isMalformed: Bool { rawValue <= DropReason.badTransportHeader.rawValue }
}
