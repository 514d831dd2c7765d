/// How long a silent peer may stay silent before this node declares it dead: the farm's deadline, or, while this host
/// drops frames it receives (a flood fills its NIC's ring or the kernel's backlog, and heartbeats go with the flood),
/// a longer one: a burst of drops is not a death.
///
/// Every heartbeat says the deadline its sender applies (`Heartbeat.deadlineMilliseconds`), and a peer counts its
/// early checks from it: a node cut off still stops serving before anyone takes its buckets. So the sender applies
/// the long deadline for as long as a peer may have last heard it announced: `longMilliseconds` after the last
/// heartbeat that said so.
struct LossTolerance: Equatable {
    /// The farm's deadline (`heartbeat_interval_ms` × `dead_after`).
    let baseMilliseconds: Int
    /// The deadline while this host drops received frames.
    let longMilliseconds: Int
    /// How long the long deadline is announced after the last sign of loss: a flood comes in bursts, and each would
    /// find the farm at the short deadline again after a shorter memory.
    static let memoryMilliseconds = 30_000
    /// The deadline under loss: 100 ms, which holds the heartbeats of a farm through a flood at a generator's full
    /// speed on the testbed (docs/benchmarks.md), or the farm's deadline if that is longer.
    static let longMilliseconds = 100

    init(baseMilliseconds: Int) {
        self.baseMilliseconds = baseMilliseconds
        longMilliseconds = max(baseMilliseconds, Self.longMilliseconds)
    }

    /// The host's count of received frames it dropped, as last read (nil before the first reading).
    private var drops: UInt64?
    /// When the count last grew.
    private(set) var lossSeenAt: Int?
    /// When a heartbeat last announced the long deadline.
    private var longAnnouncedAt: Int?

    /// How many more drops than at the last reading (an interval earlier) are a sign of loss: a flood drops thousands
    /// an interval; a stray datagram that a filter turned away, or a frame a NIC refused now and then, are not one.
    static let minimumDrops: UInt64 = 16

    /// Takes in the host's count of dropped received frames; true when it grew by `minimumDrops` or more (the first
    /// reading is the baseline).
    mutating func note(drops count: UInt64, now: Int) -> Bool {
        defer { drops = count }
        guard let previous = drops, count >= previous &+ Self.minimumDrops else { return false }
        lossSeenAt = now
        return true
    }

    /// Whether this host dropped received frames within `memoryMilliseconds`.
    func underLoss(now: Int) -> Bool { lossSeenAt.map { now - $0 <= Self.memoryMilliseconds } ?? false }

    /// The deadline a heartbeat sent now announces (and is then applied for as long as a peer may go by it).
    mutating func announce(now: Int) -> Int {
        guard underLoss(now: now) else { return baseMilliseconds }
        longAnnouncedAt = now
        return longMilliseconds
    }

    /// The deadline this node applies now: the long one while a peer may have last heard it announced.
    func applied(now: Int) -> Int {
        underLoss(now: now) || longAnnouncedAt.map { now - $0 <= longMilliseconds } == true
            ? longMilliseconds : baseMilliseconds
    }
}
