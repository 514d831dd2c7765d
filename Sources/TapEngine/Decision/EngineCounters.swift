/// The engine's counters: kept per batch on the engine thread, added to the published copy once per batch.
public struct EngineCounters: Sendable, Equatable {
    /// Frames read from the ring.
    public var received: UInt64 = 0
    /// Frames written into the TAP.
    public var delivered: UInt64 = 0
    /// Frames forwarded to their owner (directed mode).
    public var forwarded: UInt64 = 0
    /// ARP replies and neighbour advertisements sent.
    public var answered: UInt64 = 0
    /// Frames sent on the interface (answers, announcements, forwards).
    public var transmitted: UInt64 = 0
    /// Batches read (`received / batches` is the average batch).
    public var batches: UInt64 = 0
    /// Frames the kernel dropped because the ring was full (`PACKET_STATISTICS`).
    public var ringDrops: UInt64 = 0
    /// Frames that reached a thread other than the one their client belongs to (`FanoutProgram`): 0 unless the
    /// kernel's choice and the engine's disagree.
    public var wrongThread: UInt64 = 0
    /// Drops by reason, indexed by `DropReason.rawValue`.
    public var drops: [UInt64] = Array(repeating: 0, count: DropReason.allCases.count)
    /// Received frames by the offload metadata they carried, indexed by `OffloadKind.rawValue`.
    public var offloads: [UInt64] = Array(repeating: 0, count: OffloadKind.allCases.count)

    public init() {}

    public func dropped(_ reason: DropReason) -> UInt64 { drops[reason.rawValue] }
    public func received(_ kind: OffloadKind) -> UInt64 { offloads[kind.rawValue] }
    public var totalDropped: UInt64 { drops.reduce(0, +) }

    /// Adds another set of counters (the batch into the published totals).
    public mutating func add(_ other: EngineCounters) {
        received += other.received
        delivered += other.delivered
        forwarded += other.forwarded
        answered += other.answered
        transmitted += other.transmitted
        batches += other.batches
        ringDrops += other.ringDrops
        wrongThread += other.wrongThread
        for index in drops.indices { drops[index] += other.drops[index] }
        for index in offloads.indices { offloads[index] += other.offloads[index] }
    }

    /// Zeroes the counters without reallocating the drop array.
    mutating func reset() {
        received = 0
        delivered = 0
        forwarded = 0
        answered = 0
        transmitted = 0
        batches = 0
        ringDrops = 0
        wrongThread = 0
        for index in drops.indices { drops[index] = 0 }
        for index in offloads.indices { offloads[index] = 0 }
    }
}
