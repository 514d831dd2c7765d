import Crypto
import Hashing

/// Lets through only authentic, fresh heartbeats from configured peers, and counts the others by reason.
///
/// A heartbeat is fresh when its (incarnation, sequence) is above the last one accepted from its sender: a restart
/// brings a larger incarnation, and within one incarnation sequences only grow. So a captured heartbeat replayed
/// later changes nothing.
struct HeartbeatGate {
    private let key: SymmetricKey
    private let peers: Set<NodeID>
    private var last: [NodeID: (incarnation: UInt64, sequence: UInt64)] = [:]
    private(set) var rejected: [Heartbeat.Rejection: UInt64] = [:]

    init(key: SymmetricKey, peers: Set<NodeID>) {
        self.key = key
        self.peers = peers
    }

    /// The heartbeat in `bytes` if it is authentic, from a peer, and fresh; `nil` (and counted) otherwise.
    mutating func admit(_ bytes: [UInt8]) -> Heartbeat? {
        let heartbeat: Heartbeat
        switch Heartbeat.decode(bytes, key: key) {
        case .failure(let rejection):
            rejected[rejection, default: 0] += 1
            return nil
        case .success(let decoded):
            heartbeat = decoded
        }
        guard peers.contains(heartbeat.sender) else {
            rejected[.unknownNode, default: 0] += 1
            return nil
        }
        if let previous = last[heartbeat.sender],
            (heartbeat.incarnation, heartbeat.sequence) <= (previous.incarnation, previous.sequence)
        {
            rejected[.replayed, default: 0] += 1
            return nil
        }
        last[heartbeat.sender] = (heartbeat.incarnation, heartbeat.sequence)
        return heartbeat
    }
}
