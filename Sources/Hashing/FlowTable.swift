/// What `FlowTable.insert` did.
public enum FlowInsertOutcome: Equatable, Sendable {
    /// The flow was added in a free (or expired) slot.
    case inserted
    /// The flow's set was full of live flows, so its least recently seen flow was evicted to make room.
    case insertedEvictingOldest
    /// The flow was already there; its idle time was reset.
    case alreadyPresent
}

/// Running totals of a flow table, for counters and metrics.
public struct FlowTableCounters: Equatable, Sendable {
    /// Flows added.
    public var inserted: UInt64 = 0
    /// Live flows pushed out because their set was full.
    public var evicted: UInt64 = 0
    /// Flows dropped after their idle (or closing) timeout.
    public var expired: UInt64 = 0
    /// Flows removed on request (TCP RST, handover).
    public var removed: UInt64 = 0

    public init() {}
}

/// The flows a node has accepted: fixed capacity, no allocation after `init`, O(1) lookup and insert.
///
/// Invariants: the table is set-associative, `ways` (8) slots per set, and a flow may live in either of two sets chosen
/// by its hash (it goes into the emptier one: the "power of two choices" keeps sets even, so evictions start only when
/// the table is nearly full). A slot is free when its tag is 0; no key is ever in two slots. A flow expires after
/// `idleTimeout` ms without a packet (after `closingTimeout` once it is closing); an expired slot counts as free and is
/// reclaimed by the next insert into its sets or by `expire`. When an insert finds both sets full of live flows it
/// evicts their least recently seen flow (an LRU over 16 slots: global LRU at O(1) cost, without a linked list). Times are a caller's monotonic millisecond clock in a `UInt32`; ages use
/// wrapping subtraction, so they are correct for timeouts up to 24 days.
///
/// Memory: 32 bytes per slot (4-byte tag, 24-byte key, 4-byte timestamp), slots = capacity rounded up to a power of
/// two: 32 MiB for 1M flows.
///
/// The hash is VH1 with a seed of the table's own (pass a random one): the table is local to a node, and an unknown
/// seed stops a client from aiming many flows at one set.
///
/// - Warning: not thread-safe; the engine's thread owns it.
public struct FlowTable: ~Copyable {
    /// Slots per set.
    public static let ways = 8
    /// Bytes of memory per slot.
    public static let bytesPerSlot = MemoryLayout<UInt32>.stride * 2 + MemoryLayout<SlotKey>.stride

    /// A flow as stored: the address words and the ports word with the closing flag in its top byte.
    struct SlotKey {
        var high: UInt64
        var low: UInt64
        var portsAndState: UInt64
    }

    static let closingFlag: UInt64 = 1 << 56

    /// The number of slots (capacity rounded up to a power of two).
    public let slotCount: Int
    /// Milliseconds without a packet after which a flow expires.
    public let idleTimeout: UInt32
    /// Milliseconds after which a closing flow (TCP FIN seen) expires.
    public let closingTimeout: UInt32
    /// Live flows, counting expired ones not yet reclaimed.
    public private(set) var count = 0
    /// Running totals.
    public private(set) var counters = FlowTableCounters()

    private let seed: UInt64
    private let setMask: UInt64
    private let tags: UnsafeMutablePointer<UInt32>
    private let keys: UnsafeMutablePointer<SlotKey>
    private let lastSeen: UnsafeMutablePointer<UInt32>
    private var sweepCursor = 0

    /// Allocates every slot up front.
    ///
    /// - Parameters:
    ///   - capacity: flows to hold (rounded up to a power of two, at least `ways`).
    ///   - idleTimeout: milliseconds without a packet after which a flow expires.
    ///   - closingTimeout: milliseconds a flow stays after its TCP FIN, for the last ACKs.
    ///   - seed: the hash seed; pass a random one.
    public init(capacity: Int, idleTimeout: UInt32, closingTimeout: UInt32, seed: UInt64) {
        precondition(capacity > 0 && capacity <= 1 << 30, "flow table capacity must be 1...2^30")
        slotCount = max(Self.ways, 1 << (Int.bitWidth - (capacity - 1).leadingZeroBitCount))
        self.idleTimeout = idleTimeout
        self.closingTimeout = closingTimeout
        self.seed = seed
        setMask = UInt64(slotCount / Self.ways - 1)
        tags = .allocate(capacity: slotCount)
        tags.initialize(repeating: 0, count: slotCount)
        keys = .allocate(capacity: slotCount)
        keys.initialize(repeating: SlotKey(high: 0, low: 0, portsAndState: 0), count: slotCount)
        lastSeen = .allocate(capacity: slotCount)
        lastSeen.initialize(repeating: 0, count: slotCount)
    }

    deinit {
        tags.deallocate()
        keys.deallocate()
        lastSeen.deallocate()
    }

    /// Whether `key` is a live flow; if so its idle time starts again at `now`.
    public mutating func lookup(_ key: FlowKey, now: UInt32) -> Bool {
        let hash = hash(of: key)
        guard let slot = find(key, hash: hash) else { return false }
        if isExpired(slot, now: now) {
            release(slot)
            counters.expired += 1
            return false
        }
        lastSeen[slot] = now
        return true
    }

    /// Whether `key` is a live flow at `now`, without touching it.
    public func contains(_ key: FlowKey, now: UInt32) -> Bool {
        guard let slot = find(key, hash: hash(of: key)) else { return false }
        return !isExpired(slot, now: now)
    }

    /// Adds `key` (or refreshes it when present). Never fails: when both of its sets are full of live flows, the least
    /// recently seen of their flows gives up its slot.
    @discardableResult
    public mutating func insert(_ key: FlowKey, now: UInt32) -> FlowInsertOutcome {
        let hash = hash(of: key)
        if let slot = find(key, hash: hash) {
            if !isExpired(slot, now: now) {
                lastSeen[slot] = now
                return .alreadyPresent
            }
            // Reclaim the stale copy here, so that no second slot ever holds this key.
            release(slot)
            counters.expired += 1
        }
        let (first, second) = sets(of: hash)
        let freeFirst = reclaimExpired(inSetAt: first, now: now)
        let freeSecond = second == first ? freeFirst : reclaimExpired(inSetAt: second, now: now)
        let victim: Int
        let outcome: FlowInsertOutcome
        if freeFirst.count > 0 || freeSecond.count > 0 {
            // The emptier set, so that both sets of every flow fill evenly (the power of two choices).
            victim = freeFirst.count >= freeSecond.count ? freeFirst.slot : freeSecond.slot
            outcome = .inserted
        } else {
            victim = oldestSlot(inSetsAt: first, second, now: now)
            release(victim)
            counters.evicted += 1
            outcome = .insertedEvictingOldest
        }
        tags[victim] = Self.tag(of: hash)
        keys[victim] = SlotKey(high: key.client.high, low: key.client.low, portsAndState: key.portsWord)
        lastSeen[victim] = now
        count += 1
        counters.inserted += 1
        return outcome
    }

    /// Removes `key` at once (TCP RST, handover); `false` when it was not there.
    @discardableResult
    public mutating func remove(_ key: FlowKey) -> Bool {
        guard let slot = find(key, hash: hash(of: key)) else { return false }
        release(slot)
        counters.removed += 1
        return true
    }

    /// Marks `key` as closing (TCP FIN seen): it now expires `closingTimeout` ms after its last packet, so the last
    /// ACKs of the close still find it. `false` when it was not there.
    @discardableResult
    public mutating func markClosing(_ key: FlowKey, now: UInt32) -> Bool {
        guard let slot = find(key, hash: hash(of: key)) else { return false }
        keys[slot].portsAndState |= Self.closingFlag
        lastSeen[slot] = now
        return true
    }

    /// Reclaims expired flows in the next `sets` sets, continuing where the last call stopped, so that a caller can
    /// spread a full sweep over many batches. Returns the number of flows reclaimed.
    @discardableResult
    public mutating func expire(now: UInt32, sets: Int) -> Int {
        let before = counters.expired
        for _ in 0..<min(sets, slotCount / Self.ways) {
            _ = reclaimExpired(inSetAt: sweepCursor * Self.ways, now: now)
            sweepCursor = (sweepCursor + 1) & Int(setMask)
        }
        return Int(counters.expired - before)
    }

    // MARK: - Slots

    @inline(__always)
    private func hash(of key: FlowKey) -> UInt64 {
        FlowHash.hash(seed: seed, key.client.high, key.client.low, key.portsWord)
    }

    /// A nonzero tag from the hash bits that choose neither set.
    @inline(__always)
    private static func tag(of hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 32) | 1 }

    /// The first slots of the flow's two candidate sets: one from the hash's low bits, one from a remix of it.
    @inline(__always)
    private func sets(of hash: UInt64) -> (Int, Int) {
        let first = Int(truncatingIfNeeded: hash & setMask) * Self.ways
        let second = Int(truncatingIfNeeded: FlowHash.fmix64(hash ^ FlowHash.stepConstant) & setMask) * Self.ways
        return (first, second)
    }

    @inline(__always)
    private func find(_ key: FlowKey, hash: UInt64) -> Int? {
        let (first, second) = sets(of: hash)
        if let slot = find(key, tag: Self.tag(of: hash), inSetAt: first) { return slot }
        return second == first ? nil : find(key, tag: Self.tag(of: hash), inSetAt: second)
    }

    @inline(__always)
    private func find(_ key: FlowKey, tag: UInt32, inSetAt base: Int) -> Int? {
        let ports = key.portsWord
        for slot in base..<(base + Self.ways) where tags[slot] == tag {
            let stored = keys[slot]
            if stored.high == key.client.high && stored.low == key.client.low
                && stored.portsAndState & ~Self.closingFlag == ports
            {
                return slot
            }
        }
        return nil
    }

    /// Frees the expired slots of one set; returns how many slots are free and one of them (-1 if none).
    @inline(__always)
    private mutating func reclaimExpired(inSetAt base: Int, now: UInt32) -> (count: Int, slot: Int) {
        var free = (count: 0, slot: -1)
        for slot in base..<(base + Self.ways) {
            if tags[slot] != 0 && isExpired(slot, now: now) {
                release(slot)
                counters.expired += 1
            }
            if tags[slot] == 0 { free = (free.count + 1, slot) }
        }
        return free
    }

    /// The least recently seen slot of two full sets.
    @inline(__always)
    private func oldestSlot(inSetsAt first: Int, _ second: Int, now: UInt32) -> Int {
        var oldest = first
        var oldestAge: UInt32 = 0
        for index in 0..<(2 * Self.ways) {
            let slot = index < Self.ways ? first + index : second + index - Self.ways
            if now &- lastSeen[slot] >= oldestAge { (oldest, oldestAge) = (slot, now &- lastSeen[slot]) }
        }
        return oldest
    }

    @inline(__always)
    private func isExpired(_ slot: Int, now: UInt32) -> Bool {
        let timeout = keys[slot].portsAndState & Self.closingFlag != 0 ? closingTimeout : idleTimeout
        return now &- lastSeen[slot] > timeout
    }

    @inline(__always)
    private mutating func release(_ slot: Int) {
        tags[slot] = 0
        count -= 1
    }
}
