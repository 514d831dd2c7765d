import Crypto
import Foundation
import Hashing
import TapEngine

/// Sends heartbeats to the peers the controller names, without ever waiting (`HeartbeatSocket.send`), and counts per
/// peer what became of them: the status shows a peer whose heartbeats cannot leave this node, and why.
struct HeartbeatSender {
    struct PeerCounts: Equatable {
        var sent: UInt64 = 0
        /// Given up: the send buffer was full.
        var queueFull: UInt64 = 0
        /// Refused by the kernel (no route, ...).
        var failed: UInt64 = 0
        var lastError: String?
    }

    let socket: HeartbeatSocket
    let port: UInt16
    let addresses: [NodeID: IPAddress]
    private(set) var counts: [NodeID: PeerCounts] = [:]
    /// The last heartbeats sent, as sent, and when (ms): a refusal counts only if it quotes one of them
    /// (`sentAt(quoting:)`).
    private var recent: [(bytes: [UInt8], at: Int)] = []

    init(socket: HeartbeatSocket, port: UInt16, peers: [FarmConfig.Peer]) {
        self.socket = socket
        self.port = port
        addresses = Dictionary(uniqueKeysWithValues: peers.map { ($0.id, $0.ip) })
    }

    /// Signs `heartbeat` with `key` and sends it to each of `peers`.
    mutating func send(_ heartbeat: Heartbeat, key: SymmetricKey, to peers: [NodeID], at now: Int) {
        guard !peers.isEmpty else { return }
        let bytes = heartbeat.encoded(key: key)
        recent.append((bytes, now))
        if recent.count > 8 { recent.removeFirst() }
        for peer in peers {
            guard let address = addresses[peer] else { continue }
            switch socket.send(bytes, to: address, port: port) {
            case .sent: counts[peer, default: PeerCounts()].sent += 1
            case .queueFull: counts[peer, default: PeerCounts()].queueFull += 1
            case .failed(let error):
                counts[peer, default: PeerCounts()].failed += 1
                counts[peer, default: PeerCounts()].lastError = "\(error)"
            }
        }
    }

    /// When this node sent the heartbeat that `quoted` (what an ICMP error quoted of a datagram of ours) is, if it
    /// is one of the last it sent: the refusal is then the peer's kernel answering this node, not a forgery by a
    /// host that never saw one (it would need this node's current incarnation and sequence, and the signature).
    func sentAt(quoting quoted: [UInt8]) -> Int? {
        guard quoted.count >= 40 else { return nil }
        return recent.last { $0.bytes.starts(with: quoted) }?.at
    }
}
