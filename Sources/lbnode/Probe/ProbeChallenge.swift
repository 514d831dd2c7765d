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
    let me: NodeID
    let incarnation = UInt64.random(in: 1...UInt64.max)
    private var sequence: UInt64 = 0
    /// The probe's heartbeats: sequence and when sent (ms), the newest last.
    private var sent: [(sequence: UInt64, at: Int)] = []
    /// How old the probe heartbeat a running node echoes may be (a running node answers within an interval).
    static let answerWindowMilliseconds = 1000

    init(me: NodeID) { self.me = me }

    /// The next heartbeat to send every peer at `now` (ms): this node joining, with the probe's incarnation.
    mutating func nextHeartbeat(at now: Int, weight: UInt32, mac: UInt64) -> Heartbeat {
        sequence += 1
        sent.append((sequence, now))
        sent.removeAll { now - $0.at > Self.answerWindowMilliseconds }
        return Heartbeat(
            sender: me, state: .joining, healthy: true, weight: weight, incarnation: incarnation, sequence: sequence,
            viewDigest: 0, mac: mac)
    }

    /// The heartbeat in `bytes` if it is authentic (any of `keys`), comes from its sender's configured address among
    /// `peers`, and answers one of the probe's recent heartbeats; nil otherwise.
    func runningNode(
        _ bytes: [UInt8], from source: IPAddress, keys: [SymmetricKey], peers: [FarmConfig.Peer], now: Int
    ) -> Heartbeat? {
        guard case .success(let heartbeat) = Heartbeat.decode(bytes, keys: keys),
            let peer = peers.first(where: { $0.id == heartbeat.sender }),
            IPAddress(bytes: peer.address.bytes) == source,
            let echo = heartbeat.echo(of: me), echo.incarnation == incarnation,
            sent.contains(where: { $0.sequence == echo.sequence && now - $0.at <= Self.answerWindowMilliseconds })
        else { return nil }
        return heartbeat
    }
}
