import Crypto
import Foundation
import Hashing
import TapEngine

/// A node's state in the farm (DESIGN.md "Membership and failover").
enum MemberState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Announcing itself; takes no buckets yet.
    case joining = 1
    /// Serving its buckets.
    case active = 2
    /// Handing its buckets over; keeps its established connections until they end or the drain time runs out.
    case draining = 3
    /// Gone on purpose: the others take over at once, without waiting for the timeout.
    case left = 4
    /// Drained: serves nothing and takes nothing, but runs and heartbeats, so the others keep it listed (and count its
    /// vote) until `lbnode undrain` takes it back or it stops.
    case drained = 5
    /// Stopped (SIGTERM: `systemctl stop`, `restart`, a package upgrade), expected back. The others take its buckets
    /// at once, as from a drain, for new connections, and for `Membership.restartWindowMilliseconds` send its
    /// established ones on to its kernel, which answers them (or, in flood delivery within a handover window, let them
    /// wait: never reset); started again within that time, it learns them from the kernel and serves them on. Not
    /// back by then, it is taken for gone, as with `left`.
    case stopped = 6

    var description: String {
        switch self {
        case .joining: "joining"
        case .active: "active"
        case .draining: "draining"
        case .left: "left"
        case .drained: "drained"
        case .stopped: "stopped"
        }
    }
}

/// The datagram every node sends to every peer each interval, authenticated with HMAC-SHA256 over the farm key.
///
/// Wire format, version 2, 80 + 24 × n bytes, big-endian:
///
///     0  "VFHB"   4  version (2)   5  state   6  flags (bit 0: healthy, bit 1: fenced, bit 2: leader)
///     7  delivery (0: not said, 1 flood, 2 directed, 3 relay: the farm's nodes must agree, and `delivery: auto`
///        joins a running farm in its mode)
///     8  sender node ID (2)   10 n, the number of echoes (2)   12 weight (4)
///     16 incarnation (8: random at every start; see `HeartbeatGate` for how a restart is told from a replay)
///     24 sequence (8: +1 per heartbeat within an incarnation)
///     32 view digest (8: `MembershipView.digest` of the sender's view)
///     40 the sender's MAC on the farm interface (6)
///     46 the deadline the sender applies to its peers, in ms (2: 0, not said, is the farm's; `DeadlineTolerance`)
///     48 n echoes of 24 bytes (`Echo`): what the sender last heard of each node
///     48 + 24 n  HMAC-SHA256 of everything before it, with the farm key (32)
///
/// Version 1 (80 bytes, no echoes) is refused: a node of version 2 cannot tell whether a node of version 1 hears it
/// or answers its challenge, so a farm moves to version 2 all at once.
struct Heartbeat: Equatable, Sendable {
    /// What a heartbeat's sender last heard of one node: the answer to that node's challenge (its incarnation and
    /// sequence, which only a heartbeat it sent can carry) and how long ago that was.
    ///
    ///     0 node ID (2)   2 flags (1: bit 0, the node is a live member for the sender)   3 reserved (1)
    ///     4 milliseconds since the sender last heard it, at sending (4)   8 its incarnation (8)   16 its sequence (8)
    struct Echo: Equatable, Sendable {
        var node: UInt16
        /// The sender counts the node among its live peers; false: an authentic heartbeat it has not taken in yet
        /// (another incarnation waiting for its answer, or this node's own ID from another address).
        var live: Bool
        var ageMilliseconds: UInt32
        var incarnation: UInt64
        var sequence: UInt64
    }

    static let version: UInt8 = 2
    /// The size without echoes; each echo adds `echoSize`.
    static let size = 80
    static let echoSize = 24
    /// The most echoes a heartbeat carries: it must fit one 1500-byte frame, so a farm has at most 57 nodes.
    static let maximumEchoes = 56
    static var maximumSize: Int { size + maximumEchoes * echoSize }
    /// Where the incarnation is (the kernel filter pins a live peer's).
    static let incarnationOffset = 16
    static let magic: [UInt8] = Array("VFHB".utf8)

    var sender: NodeID
    var state: MemberState
    var healthy: Bool
    /// The sender serves nothing until it has heard the current view (after a stall, without quorum, ...).
    var fenced = false
    /// The sender answers ARP for the VIP (and directs, in directed mode): two claims are resolved by the lowest ID.
    var leader = false
    var weight: UInt32
    var incarnation: UInt64
    var sequence: UInt64
    var viewDigest: UInt64
    var mac: UInt64
    /// The delivery mode the sender uses (nil: not said).
    var delivery: Delivery? = nil
    /// What the sender hears: an echo per live peer, and per authentic heartbeat it has not taken in yet.
    var echoes: [Echo] = []
    /// How long the sender lets a peer stay silent before it declares it dead (0: the farm's deadline). Longer while
    /// its host drops received frames or hears its peers late (`DeadlineTolerance`); a node counts its early checks
    /// against the sender from it.
    var deadlineMilliseconds: UInt16 = 0

    static let deliveryCodes: [Delivery: UInt8] = [.flood: 1, .directed: 2, .relay: 3]

    /// Why a datagram was not accepted as a heartbeat.
    enum Rejection: String, Error, CaseIterable, Sendable {
        case malformed
        case unsupportedVersion = "unsupported_version"
        case forged
        case unknownNode = "unknown_node"
        case replayed
        /// From a live sender, but not its current incarnation (or a sequence far ahead): a forgery or an old capture.
        case otherIncarnation = "other_incarnation"
        /// Authentic, from this node's own ID, sent by another address: two nodes configured with one ID.
        case duplicateID = "duplicate_id"
        /// A peer's ID from an address other than the one configured for it.
        case wrongSource = "wrong_source"
        /// Authentic, but a new incarnation, a node coming back or this node's own ID that does not answer this node's
        /// challenge (echo its incarnation and a recent sequence): an old capture replayed, or a node that starts and
        /// answers within an interval.
        case unanswered
        /// Not checked: another unknown incarnation of a sender that is not live within the same interval (a flood of
        /// made-up ones costs one HMAC per interval; a real restart is checked at the next).
        case throttled
    }

    init(
        sender: NodeID, state: MemberState, healthy: Bool, fenced: Bool = false, leader: Bool = false, weight: UInt32,
        incarnation: UInt64, sequence: UInt64, viewDigest: UInt64, mac: UInt64, delivery: Delivery? = nil,
        deadlineMilliseconds: UInt16 = 0, echoes: [Echo] = []
    ) {
        self.deadlineMilliseconds = deadlineMilliseconds
        self.sender = sender
        self.state = state
        self.healthy = healthy
        self.fenced = fenced
        self.leader = leader
        self.weight = weight
        self.incarnation = incarnation
        self.sequence = sequence
        self.viewDigest = viewDigest
        self.mac = mac
        self.delivery = delivery
        self.echoes = echoes
    }

    /// The echo of `node`, if the sender said what it heard of it.
    func echo(of node: NodeID) -> Echo? { echoes.first { $0.node == node.rawValue } }

    /// The signed datagram.
    func encoded(key: SymmetricKey) -> [UInt8] {
        let flags: UInt8 = (healthy ? 1 : 0) | (fenced ? 2 : 0) | (leader ? 4 : 0)
        var bytes =
            Self.magic + [Self.version, state.rawValue, flags, delivery.flatMap { Self.deliveryCodes[$0] } ?? 0]
        let echoes = echoes.prefix(Self.maximumEchoes)
        bytes += Self.bigEndian(UInt64(sender.rawValue), 2) + Self.bigEndian(UInt64(echoes.count), 2)
        bytes += Self.bigEndian(UInt64(weight), 4)
        bytes += Self.bigEndian(incarnation, 8) + Self.bigEndian(sequence, 8) + Self.bigEndian(viewDigest, 8)
        bytes += Self.bigEndian(mac, 6) + Self.bigEndian(UInt64(deadlineMilliseconds), 2)
        for echo in echoes {
            bytes += Self.bigEndian(UInt64(echo.node), 2) + [echo.live ? 1 : 0, 0]
            bytes += Self.bigEndian(UInt64(echo.ageMilliseconds), 4) + Self.bigEndian(echo.incarnation, 8)
            bytes += Self.bigEndian(echo.sequence, 8)
        }
        return bytes + Array(HMAC<SHA256>.authenticationCode(for: bytes, using: key))
    }

    /// The magic as one big-endian word (the kernel filter compares it).
    static let magicWord = magic.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }

    /// The sender, incarnation and sequence of a datagram that has a heartbeat's size, magic and version, read without
    /// checking the signature (so that replays and strangers cost no HMAC); `.malformed` or `.unsupportedVersion`
    /// otherwise. Non-generic loads of whole words: it runs for every datagram of a flood.
    static func peek(_ bytes: UnsafeRawBufferPointer) -> Result<
        (sender: UInt16, incarnation: UInt64, sequence: UInt64), Rejection
    > {
        guard bytes.count >= size, UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)) == magicWord else {
            return .failure(.malformed)
        }
        guard bytes[4] == version else { return .failure(.unsupportedVersion) }
        let echoes = Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 10, as: UInt16.self)))
        guard echoes <= maximumEchoes, bytes.count == size + echoes * echoSize else { return .failure(.malformed) }
        return .success(
            (
                UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self)),
                UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            ))
    }

    /// Checks the signature (with any of `keys`) and the format; replays and unknown senders are the gate's to judge.
    static func decode(_ bytes: [UInt8], key: SymmetricKey) -> Result<Heartbeat, Rejection> {
        decode(bytes, keys: [key])
    }

    static func decode(_ bytes: [UInt8], keys: [SymmetricKey]) -> Result<Heartbeat, Rejection> {
        guard bytes.count >= size, Array(bytes[0..<4]) == magic else { return .failure(.malformed) }
        guard bytes[4] == version else { return .failure(.unsupportedVersion) }
        let count = Int(read(bytes, 10, 2))
        let signed = size - 32 + count * echoSize
        guard count <= maximumEchoes, bytes.count == signed + 32 else { return .failure(.malformed) }
        guard
            keys.contains(where: {
                HMAC<SHA256>.isValidAuthenticationCode(
                    bytes[signed..<(signed + 32)], authenticating: bytes[0..<signed], using: $0)
            })
        else {
            return .failure(.forged)
        }
        guard let state = MemberState(rawValue: bytes[5]), let sender = NodeID(rawValue: UInt16(read(bytes, 8, 2)))
        else { return .failure(.malformed) }
        return .success(
            Heartbeat(
                sender: sender, state: state, healthy: bytes[6] & 1 != 0, fenced: bytes[6] & 2 != 0,
                leader: bytes[6] & 4 != 0, weight: UInt32(read(bytes, 12, 4)),
                incarnation: read(bytes, 16, 8), sequence: read(bytes, 24, 8), viewDigest: read(bytes, 32, 8),
                mac: read(bytes, 40, 6), delivery: deliveryCodes.first { $0.value == bytes[7] }?.key,
                deadlineMilliseconds: UInt16(read(bytes, 46, 2)),
                echoes: (0..<count).map { index in
                    let at = 48 + index * echoSize
                    return Echo(
                        node: UInt16(read(bytes, at, 2)), live: bytes[at + 2] & 1 != 0,
                        ageMilliseconds: UInt32(read(bytes, at + 4, 4)), incarnation: read(bytes, at + 8, 8),
                        sequence: read(bytes, at + 16, 8))
                }))
    }

    private static func bigEndian(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
    }

    private static func read(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        bytes[offset..<(offset + count)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
