import Crypto
import Hashing

/// Lets through only authentic, fresh heartbeats from configured peers at their configured addresses, and counts the
/// others by reason. The cheap checks come first (size, magic, version, sender, source address, freshness), the HMAC
/// last: a datagram that fails a cheap check costs well under a microsecond.
///
/// A heartbeat is fresh when it carries its sender's current incarnation and a higher sequence than the last one
/// accepted. Incarnations are random at every start: a different one is considered only once the sender has been
/// silent for `restartAfter` milliseconds (it died, or restarted), so a captured heartbeat replayed while its sender
/// lives changes nothing, and neither does a forgery with a made-up incarnation (refused before its HMAC).
///
/// Challenge and response. A new incarnation of a sender (a restart, or a sender never heard), or this node's own ID
/// from another address, is taken in only when its heartbeat echoes this node's incarnation and a sequence this node
/// sent within two failover times (`Challenges`): only a heartbeat made after it heard this node can, so a replay from any earlier
/// capture changes nothing. Until it answers, its authentic heartbeats are *challenges* (`challenges`): this node's
/// next heartbeat echoes them, and the sender answers in its next one. (The incarnation taken in last needs no answer,
/// however long its sender was silent: only the sender can sign a higher sequence than any this node took in, and a
/// replay of one it took in is `replayed`.)
struct HeartbeatGate {
    struct Challenge: Equatable {
        var incarnation: UInt64
        var sequence: UInt64
        var at: Int
    }

    private var keys: [SymmetricKey]
    private let me: NodeID
    private let peers: [NodeID: IPAddress]
    private let restartAfter: Int
    /// This node's recent heartbeats, which answers echo (kept for two failover times).
    private var sent: Challenges
    /// Authentic heartbeats not taken in (waiting for an answer), per sender: the newest.
    private(set) var challenges: [NodeID: Challenge] = [:]
    /// The heartbeat interval: a sender that is not live gets one HMAC per interval for an incarnation not seen yet.
    private let interval: Int
    /// When an unknown incarnation of each sender (this node's own ID included) was last checked.
    private var lastUnknownChecked: [UInt16: Int] = [:]
    private var last: [NodeID: (incarnation: UInt64, sequence: UInt64, heardAt: Int)] = [:]
    private(set) var rejected: [Heartbeat.Rejection: UInt64] = [:]
    /// The addresses that sent authentic heartbeats with this node's own ID, and when they last did.
    private(set) var duplicates: [IPAddress: Int] = [:]
    /// The last heartbeat refused because it came from an unexpected address: (claimed sender, address).
    private(set) var lastWrongSource: (sender: UInt16, source: IPAddress)?
    /// How far the sequence of a live sender may jump (heartbeats lost in a burst): 24 s at 4 ms.
    static let sequenceWindow: UInt64 = 6000

    /// - Parameters:
    ///   - keys: the farm keys; any of them authenticates (a rotation holds two).
    ///   - peers: the configured peers and their addresses.
    ///   - restartAfter: milliseconds of silence after which a sender is no longer live (a new incarnation of it, or
    ///     its return, must answer a challenge).
    ///   - incarnation: this node's incarnation, which answers echo.
    ///   - interval: the heartbeat interval (ms).
    init(
        keys: [SymmetricKey], me: NodeID, peers: [NodeID: IPAddress], restartAfter: Int, incarnation: UInt64,
        interval: Int
    ) {
        self.interval = interval
        self.keys = keys
        self.me = me
        self.peers = peers
        self.restartAfter = restartAfter
        sent = Challenges(me: me, incarnation: incarnation, window: 2 * restartAfter)
    }

    /// Whether a heartbeat of `sender` with `incarnation` may cost an HMAC now: always for the incarnation of its
    /// latest authentic challenge, once per interval for any other. A flood of made-up incarnations in a dead peer's
    /// (or this node's own) name then costs one HMAC per interval, not one per datagram.
    private mutating func mayCheckUnknown(_ sender: UInt16, _ incarnation: UInt64, now: Int) -> Bool {
        if let id = NodeID(rawValue: sender), challenges[id]?.incarnation == incarnation { return true }
        if let last = lastUnknownChecked[sender], now - last < interval { return false }
        lastUnknownChecked[sender] = now
        return true
    }

    /// This node sent its heartbeat `sequence` at `now`: answers may echo it for two failover times.
    mutating func noteSent(sequence: UInt64, at now: Int) {
        sent.noteSent(sequence: sequence, at: now)
        challenges = challenges.filter { now - $0.value.at <= sent.window }
    }

    /// A reload brought new keys (a rotation).
    mutating func replaceKeys(_ keys: [SymmetricKey]) { self.keys = keys }

    /// The incarnation of every peer heard within `restartAfter` ms of `now`, by its address: the heartbeat socket's
    /// kernel filter pins them, so a flood spoofing a live peer without its incarnation never reaches the queue. A
    /// peer silent longer (restarting, with a new incarnation) is unpinned again.
    func liveIncarnations(now: Int) -> [IPAddress: UInt64] {
        Dictionary(
            uniqueKeysWithValues: last.compactMap { sender, record in
                now - record.heardAt <= restartAfter ? peers[sender].map { ($0, record.incarnation) } : nil
            })
    }

    private mutating func reject(_ reason: Heartbeat.Rejection) -> Heartbeat? {
        rejected[reason, default: 0] += 1
        return nil
    }

    /// The heartbeat in `bytes`, sent from `source`, if it is authentic, from a peer's address, and fresh; `nil` (and
    /// counted) otherwise.
    mutating func admit(_ bytes: [UInt8], from source: IPAddress, now: Int) -> Heartbeat? {
        bytes.withUnsafeBytes { admit($0, from: source, now: now) }
    }

    mutating func admit(_ bytes: UnsafeRawBufferPointer, from source: IPAddress, now: Int) -> Heartbeat? {
        let header: (sender: UInt16, incarnation: UInt64, sequence: UInt64)
        switch Heartbeat.peek(bytes) {
        case .failure(let reason): return reject(reason)
        case .success(let peeked): header = peeked
        }
        guard let sender = NodeID(rawValue: header.sender) else { return reject(.malformed) }
        if sender == me {
            guard mayCheckUnknown(header.sender, header.incarnation, now: now) else { return reject(.throttled) }
            guard case .success(let heartbeat) = Heartbeat.decode(Array(bytes), keys: keys) else {
                return reject(.forged)
            }
            challenges[me] = Challenge(incarnation: header.incarnation, sequence: header.sequence, at: now)
            // Another process with this ID hears this node: two nodes share an ID. Without the answer, a replay of
            // this node's own heartbeat, which must not fence it.
            guard sent.answered(by: heartbeat, now: now) else { return reject(.unanswered) }
            duplicates[source] = now
            return reject(.duplicateID)
        }
        guard let address = peers[sender] else { return reject(.unknownNode) }
        guard address == source else {
            lastWrongSource = (header.sender, source)
            return reject(.wrongSource)
        }
        if let previous = last[sender], now - previous.heardAt <= restartAfter {
            // The sender lives: only its own incarnation, a little further on, can be next. Anything else is a replay
            // or a forgery, refused without an HMAC (a flood spoofing a live peer's address costs next to nothing).
            guard header.incarnation == previous.incarnation else { return reject(.otherIncarnation) }
            guard header.sequence > previous.sequence else { return reject(.replayed) }
            guard header.sequence - previous.sequence <= Self.sequenceWindow else { return reject(.otherIncarnation) }
        } else if let previous = last[sender], header.incarnation == previous.incarnation,
            header.sequence <= previous.sequence
        {
            return reject(.replayed)
        }
        // Another incarnation than the last one taken in (or a sender never heard) must answer. The same one, with a
        // higher sequence than any taken in, can only come from the sender itself, however long it was silent: a peer
        // that does not hear this node heartbeats it once a second (`HeartbeatPacing`) and cannot answer.
        let unknown = header.incarnation != last[sender]?.incarnation
        if unknown {
            guard mayCheckUnknown(header.sender, header.incarnation, now: now) else { return reject(.throttled) }
        }
        switch Heartbeat.decode(Array(bytes), keys: keys) {
        case .failure(let reason): return reject(reason)
        case .success(let heartbeat):
            if unknown {
                guard sent.answered(by: heartbeat, now: now) else {
                    challenges[sender] = Challenge(incarnation: header.incarnation, sequence: header.sequence, at: now)
                    return reject(.unanswered)
                }
                challenges[sender] = nil
            }
            last[sender] = (header.incarnation, header.sequence, now)
            return heartbeat
        }
    }
}
