/// How long a silent peer may stay silent before this node declares it dead: the farm's deadline, or a longer one
/// while the evidence says that silence is not death.
/// - **Loss**: this host drops frames it receives (a flood fills its NIC's ring or the kernel's backlog, and
///   heartbeats go with the flood): the long deadline, 100 ms. A burst of drops is not a death.
/// - **Lateness**: a peer was heard again after a silence longer than two intervals, more than one lost heartbeat
///   (which `dead_after` is for): a busy host, whose kernel or loop gets the CPU late; a hypervisor that steals it
///   for a few ms. Twice the longest such silence within `memoryMilliseconds`, at most the long deadline. A peer late
///   once by most of the deadline will be late by that much again, and at the farm's deadline the next time would
///   fence a node or kill one for nothing.
///
/// Every heartbeat says the deadline its sender applies (`Heartbeat.deadlineMilliseconds`), and a peer counts its
/// early checks from it: a node cut off still stops serving before anyone takes its buckets. So the sender applies a
/// longer deadline for as long as a peer may have last heard it announced: `longMilliseconds` after the last
/// heartbeat that said so.
struct DeadlineTolerance: Equatable {
    /// The farm's deadline (`heartbeat_interval_ms` × `dead_after`).
    let baseMilliseconds: Int
    let intervalMilliseconds: Int
    /// The deadline while this host drops received frames, and the most that lateness lengthens it to.
    let longMilliseconds: Int
    /// How long a longer deadline is kept after the last sign that asked for it: a flood or a busy spell comes in
    /// bursts, and each would find the farm at the short deadline again after a shorter memory.
    static let memoryMilliseconds = 30_000
    /// The deadline under loss: 100 ms, which holds the heartbeats of a farm through a flood at a generator's full
    /// speed on the testbed (docs/benchmarks.md), or the farm's deadline if that is longer.
    static let longMilliseconds = 100

    init(intervalMilliseconds: Int, deadAfter: Int) {
        self.intervalMilliseconds = intervalMilliseconds
        baseMilliseconds = intervalMilliseconds * deadAfter
        longMilliseconds = max(baseMilliseconds, Self.longMilliseconds)
        silences = RecentMaximum(windowMilliseconds: Self.memoryMilliseconds)
        announced = RecentMaximum(windowMilliseconds: longMilliseconds)
    }

    /// The host's count of received frames it dropped, as last read (nil before the first reading).
    private var drops: UInt64?
    /// When the count last grew.
    private(set) var lossSeenAt: Int?
    /// The silences of peers heard late (`note(silence:)`).
    private var silences: RecentMaximum
    /// The deadlines heartbeats announced within the last `longMilliseconds`.
    private var announced: RecentMaximum

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

    /// Takes in how long a peer was silent before this node heard it again (`Membership.noteSilence`); true when it
    /// lengthens the deadline. Up to two intervals it was on time, or one heartbeat was lost: nothing to note.
    mutating func note(silence milliseconds: Int, now: Int) -> Bool {
        guard milliseconds > 2 * intervalMilliseconds else { return false }
        let before = lateDeadline(now: now)
        silences.note(milliseconds, now: now)
        return lateDeadline(now: now) > before
    }

    /// Whether this host dropped received frames within `memoryMilliseconds`.
    func underLoss(now: Int) -> Bool { lossSeenAt.map { now - $0 <= Self.memoryMilliseconds } ?? false }

    /// The longest silence noted within `memoryMilliseconds` (nil: no peer heard late).
    func longestSilence(now: Int) -> Int? { silences.maximum(now: now) }

    /// What lateness asks for: twice the longest silence, between the farm's deadline and the long one.
    func lateDeadline(now: Int) -> Int {
        min(longMilliseconds, max(baseMilliseconds, 2 * (longestSilence(now: now) ?? 0)))
    }

    /// Whether lateness lengthens the deadline now.
    func late(now: Int) -> Bool { lateDeadline(now: now) > baseMilliseconds }

    /// The deadline the evidence asks for now.
    private func wanted(now: Int) -> Int { underLoss(now: now) ? longMilliseconds : lateDeadline(now: now) }

    /// The deadline a heartbeat sent now announces (and is then applied for as long as a peer may go by it).
    mutating func announce(now: Int) -> Int {
        let deadline = wanted(now: now)
        if deadline > baseMilliseconds { announced.note(deadline, now: now) }
        return deadline
    }

    /// The deadline this node applies now: what the evidence asks for, or longer while a peer may have last heard a
    /// longer one announced.
    func applied(now: Int) -> Int { max(wanted(now: now), announced.maximum(now: now) ?? baseMilliseconds) }
}
