import Crypto
import Hashing
import TapEngine

/// The start-time probe's proof that a peer runs lbnode (`delivery: auto` joins a running farm in the mode its
/// heartbeats name). The probe heartbeats every peer as this node, with an incarnation of its own: a running node's
/// gate takes that as a challenge and echoes it in its next heartbeat (`HeartbeatGate`). A running node counts only
/// from a heartbeat that comes from its configured address and echoes one of the probe's heartbeats sent within
/// `answerWindowMilliseconds`: a heartbeat replayed from any capture, or sent from elsewhere, counts for nothing, nor
/// does the delivery mode it names.
struct ProbeChallenge {
    private var sequence: UInt64 = 0
    /// The probe's heartbeats; a running node answers within an interval, so a second is plenty.
    private var sent: Challenges
    static let answerWindowMilliseconds = 1000

    init(me: NodeID) {
        sent = Challenges(
            me: me, incarnation: UInt64.random(in: 1...UInt64.max), window: Self.answerWindowMilliseconds)
    }

    /// The incarnation the probe heartbeats with.
    var incarnation: UInt64 { sent.incarnation }

    /// The next heartbeat to send every peer at `now` (ms): this node joining, with the probe's incarnation.
    mutating func nextHeartbeat(at now: Int, weight: UInt32, mac: UInt64) -> Heartbeat {
        sequence += 1
        sent.noteSent(sequence: sequence, at: now)
        return Heartbeat(
            sender: sent.me, state: .joining, healthy: true, weight: weight, incarnation: incarnation, sequence: sequence,
            viewDigest: 0, mac: mac)
    }

    /// The heartbeat in `bytes` if it is authentic (any of `keys`), comes from its sender's configured address among
    /// `peers`, and answers one of the probe's recent heartbeats; nil otherwise.
    func runningNode(
        _ bytes: [UInt8], from source: IPAddress, keys: [SymmetricKey], peers: [FarmConfig.Peer], now: Int
    ) -> Heartbeat? {
        guard case .success(let heartbeat) = Heartbeat.decode(bytes, keys: keys),
            let peer = peers.first(where: { $0.id == heartbeat.sender }),
            peer.ip == source, sent.answered(by: heartbeat, now: now)
        else { return nil }
        return heartbeat
    }
}
