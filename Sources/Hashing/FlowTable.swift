/// What `FlowTable.insert` did.
public enum FlowInsertOutcome: Equatable, Sendable {
    /// The flow was added in a free (or expired) slot.
    case inserted
    /// The flow's set was full of live flows, so its least recently seen flow was evicted to make room.
    case insertedEvictingOldest
    /// The flow was already there; its idle time was reset.
    case alreadyPresent
    /// Not added: both of its sets were full of confirmed flows, which an unconfirmed one never evicts.
    case refused
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
    /// Flows confirmed: seen again after their first segment, with a segment that is not a SYN.
    public var confirmed: UInt64 = 0
    /// Unconfirmed flows not added because their sets were full of confirmed ones.
    public var refused: UInt64 = 0

    public init() {}

    /// Adds another table's totals (the engine's threads each have one).
    public mutating func add(_ other: FlowTableCounters) {
        inserted += other.inserted
        evicted += other.evicted
        expired += other.expired
        removed += other.removed
        confirmed += other.confirmed
        refused += other.refused
    }
}

/// The flows a node has accepted: fixed capacity, no allocation after `init`, O(1) lookup and insert.
///
/// Invariants: the table is set-associative, `ways` (8) slots per set, and a flow may live in either of two sets chosen
/// by its hash. It goes into the emptier one (the "power of two choices" keeps sets even), and when both are full one
/// of their flows moves to its own other set (one cuckoo step), so evictions start only when the table is nearly
/// full. A slot holds no key, only two independent hashes of it: a 32-bit tag (0 = free slot) and
/// a 47-bit fingerprint. A false match needs both to collide (one chance in 2^79 per comparison), which is as good as
/// exact, and it keeps a set in two adjacent cache lines. No flow is ever in two slots.
///
/// A flow expires after `idleTimeout` ms without a packet (after `closingTimeout` once it is closing); an expired slot
/// counts as free and is reclaimed by the next insert into its sets or by `expire`. When an insert finds both sets
/// full of live flows it evicts their least recently seen flow (an LRU over 16 slots: global LRU at O(1) cost, without
/// a linked list).
///
/// Spoofed floods. A flow enters *unconfirmed* and is *confirmed* when it is seen again with a segment that is not a
/// SYN (a real client's handshake ACK does that; a random-source SYN flood never does). Unconfirmed flows expire after
/// `unconfirmedTimeout` and only ever evict each other: a flood cannot push out the connections a handover must keep.
/// (A flood that sends every spoofed flow twice can still confirm them; see docs/operations.md.) Times are the caller's monotonic millisecond clock in a `UInt32`; ages use wrapping subtraction,
/// so they are right for timeouts up to 24 days.
///
/// Memory: 16 bytes per slot (tag 4, last-seen time 4, and 8 for the fingerprint, a 16-bit value and the closing
/// flag); the slots are the smallest power of two that holds the capacity at most 90% full, so 18 to 36 bytes per
/// flow of capacity (32 MiB for 1M flows). A set is one 128-byte block: 8 tags, 8 times, 8 words.
///
/// The hashes are VH1 with seeds of the table's own (pass a random one): the table is local to a node, and an unknown
/// seed stops a client from aiming many flows at one set.
///
/// - Warning: not thread-safe; the engine's thread owns it.
public struct FlowTable: ~Copyable {
    /// Slots per set.
    public static let ways = 8
    /// Bytes of memory per slot.
    public static let bytesPerSlot = 16
    public static let bytesPerSet = ways * bytesPerSlot
    static let seenOffset = 4 * ways
    static let fingerprintOffset = 8 * ways
    /// The word stored per slot: bit 0 = closing (TCP FIN seen), bits 1-16 = the flow's value, bit 17 = confirmed,
    /// bits 18-63 = the fingerprint.
    static let closingFlag: UInt64 = 1
    static let valueMask: UInt64 = 0xFFFF << 1
    static let confirmedFlag: UInt64 = 1 << 17
    static let fingerprintMask: UInt64 = ~((1 << 18) - 1)

    /// The number of slots: `slots(forCapacity:)`.
    public let slotCount: Int
    /// Milliseconds without a packet after which a flow expires.
    public let idleTimeout: UInt32
    /// Milliseconds after which a closing flow (TCP FIN seen) expires.
    public let closingTimeout: UInt32
    /// Milliseconds without a packet after which an unconfirmed flow expires.
    public let unconfirmedTimeout: UInt32
    /// Live flows, counting expired ones not yet reclaimed.
    public private(set) var count = 0
    /// Running totals.
    public private(set) var counters = FlowTableCounters()

    private let seed: UInt64
    private let setMask: UInt64
    private let storage: UnsafeMutableRawPointer
    private var sweepCursor = 0

    /// Allocates every slot up front.
    ///
    /// - Parameters:
    ///   - capacity: flows to hold; see `slots(forCapacity:)`.
    ///   - idleTimeout: milliseconds without a packet after which a flow expires.
    ///   - closingTimeout: milliseconds a flow stays after its TCP FIN, for the last ACKs.
    ///   - unconfirmedTimeout: milliseconds an unconfirmed flow stays without a packet (default `idleTimeout`).
    ///   - seed: the hash seed; pass a random one.
    public init(
        capacity: Int, idleTimeout: UInt32, closingTimeout: UInt32, unconfirmedTimeout: UInt32? = nil, seed: UInt64
    ) {
        precondition(capacity > 0 && capacity <= 1 << 30, "flow table capacity must be 1...2^30")
        slotCount = Self.slots(forCapacity: capacity)
        self.idleTimeout = idleTimeout
        self.closingTimeout = closingTimeout
        self.unconfirmedTimeout = unconfirmedTimeout ?? idleTimeout
        self.seed = seed
        setMask = UInt64(slotCount / Self.ways - 1)
        storage = .allocate(byteCount: slotCount * Self.bytesPerSlot, alignment: 128)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: slotCount * Self.bytesPerSlot)
    }

    deinit {
        storage.deallocate()
    }

    /// The smallest power of two (at least `ways`) that holds `capacity` flows at most 90% full, where evictions are
    /// still zero in practice (`lbbench hash` measures them).
    public static func slots(forCapacity capacity: Int) -> Int {
        var slots = ways
        while capacity * 10 > slots * 9 { slots <<= 1 }
        return slots
    }

    /// Whether `key` is a live flow; if so its idle time starts again at `now`.
    public mutating func lookup(_ key: FlowKey, now: UInt32) -> Bool {
        value(of: key, now: now) != nil
    }

    /// The value stored with `key` (see `insert`) if it is a live flow, whose idle time then starts again at `now`.
    public mutating func value(of key: FlowKey, now: UInt32) -> UInt16? {
        let hashes = hashes(of: key)
        guard let slot = find(hashes) else { return nil }
        if isExpired(slot, now: now) {
            release(slot)
            counters.expired += 1
            return nil
        }
        setLastSeen(slot, now)
        return UInt16(truncatingIfNeeded: (word(slot) & Self.valueMask) >> 1)
    }

    /// Whether `key` is a live flow at `now`, without touching it.
    public func contains(_ key: FlowKey, now: UInt32) -> Bool {
        guard let slot = find(hashes(of: key)) else { return false }
        return !isExpired(slot, now: now)
    }

    /// Adds `key` unconfirmed with a 16-bit `value` (the engine stores the node that serves the flow), or refreshes it
    /// and sets its value when present, confirming it if `confirm` (the segment is not a SYN). When both of its sets
    /// are full of live flows, the least recently seen of their unconfirmed flows gives up its slot (or, with
    /// `confirmed: true`, of all of them); an unconfirmed flow is refused when every slot holds a confirmed one.
    @discardableResult
    public mutating func insert(
        _ key: FlowKey, now: UInt32, value: UInt16 = 0, confirm: Bool = false, confirmed: Bool = false
    ) -> FlowInsertOutcome {
        let hashes = hashes(of: key)
        let valueBits = UInt64(value) << 1
        if let slot = find(hashes) {
            if !isExpired(slot, now: now) {
                setLastSeen(slot, now)
                var updated = word(slot) & ~Self.valueMask | valueBits
                if confirm && updated & Self.confirmedFlag == 0 {
                    updated |= Self.confirmedFlag
                    counters.confirmed += 1
                }
                setWord(slot, updated)
                return .alreadyPresent
            }
            // Reclaim the stale copy here, so that no second slot ever holds this key.
            release(slot)
            counters.expired += 1
        }
        let (first, second) = sets(of: hashes.primary)
        let freeFirst = reclaimExpired(inSet: first, now: now)
        let freeSecond = second == first ? freeFirst : reclaimExpired(inSet: second, now: now)
        let victim: Int
        let outcome: FlowInsertOutcome
        if freeFirst.count > 0 || freeSecond.count > 0 {
            // The emptier set, so that both sets of every flow fill evenly (the power of two choices).
            victim = freeFirst.count >= freeSecond.count ? freeFirst.slot : freeSecond.slot
            outcome = .inserted
        } else if let freed = relocateOne(fromSets: first, second, now: now) {
            victim = freed
            outcome = .inserted
        } else if let oldest = oldestSlot(inSets: first, second, now: now, confirmedToo: confirmed) {
            victim = oldest
            release(victim)
            counters.evicted += 1
            outcome = .insertedEvictingOldest
        } else {
            counters.refused += 1
            return .refused
        }
        setTag(victim, Self.tag(of: hashes.primary))
        setWord(victim, hashes.fingerprint | valueBits | (confirmed ? Self.confirmedFlag : 0))
        if confirmed { counters.confirmed += 1 }
        setLastSeen(victim, now)
        count += 1
        counters.inserted += 1
        return outcome
    }

    /// Removes `key` at once (TCP RST, handover); `false` when it was not there.
    @discardableResult
    public mutating func remove(_ key: FlowKey) -> Bool {
        guard let slot = find(hashes(of: key)) else { return false }
        release(slot)
        counters.removed += 1
        return true
    }

    /// Confirms `key` if it is there (see the type's notes); `false` when it was not there.
    @discardableResult
    public mutating func confirm(_ key: FlowKey) -> Bool {
        guard let slot = find(hashes(of: key)) else { return false }
        if word(slot) & Self.confirmedFlag == 0 {
            setWord(slot, word(slot) | Self.confirmedFlag)
            counters.confirmed += 1
        }
        return true
    }

    /// Whether `key` is there and confirmed.
    public func isConfirmed(_ key: FlowKey) -> Bool {
        guard let slot = find(hashes(of: key)) else { return false }
        return word(slot) & Self.confirmedFlag != 0
    }

    /// Marks `key` as closing (TCP FIN seen): it now expires `closingTimeout` ms after its last packet, so the last
    /// ACKs of the close still find it. `false` when it was not there.
    @discardableResult
    public mutating func markClosing(_ key: FlowKey, now: UInt32) -> Bool {
        guard let slot = find(hashes(of: key)) else { return false }
        setWord(slot, word(slot) | Self.closingFlag)
        setLastSeen(slot, now)
        return true
    }

    /// Reclaims expired flows in the next `sets` sets, continuing where the last call stopped, so that a caller can
    /// spread a full sweep over many batches. Returns the number of flows reclaimed.
    @discardableResult
    public mutating func expire(now: UInt32, sets: Int) -> Int {
        let before = counters.expired
        for _ in 0..<min(sets, slotCount / Self.ways) {
            _ = reclaimExpired(inSet: sweepCursor, now: now)
            sweepCursor = (sweepCursor + 1) & Int(setMask)
        }
        return Int(counters.expired - before)
    }

    // MARK: - Hashes and sets

    /// Where the flow `key` is or would go: its two sets, `bytesPerSet` bytes from each address. A set is usually a
    /// cache miss (the table is larger than the caches), so a caller with other work to do prefetches both first.
    public func sets(of key: FlowKey) -> (first: UnsafeRawPointer, second: UnsafeRawPointer) {
        let (first, second) = sets(of: FlowHash.hash(seed: seed, key.client.high, key.client.low, key.portsWord))
        let base = UnsafeRawPointer(storage)
        return (base + first * Self.bytesPerSet, base + second * Self.bytesPerSet)
    }

    /// Two independent VH1 hashes of a flow: `primary` picks the sets and the tag, `fingerprint` (its top 47 bits)
    /// confirms a match.
    @inline(__always)
    private func hashes(of key: FlowKey) -> (primary: UInt64, fingerprint: UInt64) {
        let primary = FlowHash.hash(seed: seed, key.client.high, key.client.low, key.portsWord)
        let fingerprint = FlowHash.hash(seed: ~seed, key.client.high, key.client.low, key.portsWord)
        return (primary, fingerprint & Self.fingerprintMask)
    }

    /// A nonzero tag from the hash bits that choose neither set.
    @inline(__always)
    private static func tag(of hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 32) | 1 }

    /// The flow's two candidate sets: one from the hash's low bits, the other that one xor a hash of the tag, so that
    /// either set of a stored flow gives the other from the tag alone (partial-key cuckoo hashing).
    @inline(__always)
    private func sets(of hash: UInt64) -> (Int, Int) {
        let first = Int(truncatingIfNeeded: hash & setMask)
        return (first, alternateSet(of: first, tag: Self.tag(of: hash)))
    }

    @inline(__always)
    private func alternateSet(of set: Int, tag: UInt32) -> Int {
        set ^ Int(truncatingIfNeeded: FlowHash.fmix64(UInt64(tag)) & setMask)
    }

    /// Moves one flow of two full sets to a free slot of its own other set; returns the slot it freed. One cuckoo step
    /// lets the table fill to about 95% before anything is evicted (instead of 75% without it).
    private mutating func relocateOne(fromSets first: Int, _ second: Int, now: UInt32) -> Int? {
        for index in 0..<(2 * Self.ways) {
            let slot = index < Self.ways ? first * Self.ways + index : second * Self.ways + index - Self.ways
            let set = slot / Self.ways
            let other = alternateSet(of: set, tag: tag(slot))
            guard other != first && other != second else { continue }
            let free = reclaimExpired(inSet: other, now: now)
            guard free.count > 0 else { continue }
            setTag(free.slot, tag(slot))
            setWord(free.slot, word(slot))
            setLastSeen(free.slot, lastSeen(slot))
            setTag(slot, 0)
            return slot
        }
        return nil
    }

    @inline(__always)
    private func find(_ hashes: (primary: UInt64, fingerprint: UInt64)) -> Int? {
        let (first, second) = sets(of: hashes.primary)
        let tag = Self.tag(of: hashes.primary)
        if let slot = find(tag: tag, fingerprint: hashes.fingerprint, inSet: first) { return slot }
        return second == first ? nil : find(tag: tag, fingerprint: hashes.fingerprint, inSet: second)
    }

    @inline(__always)
    private func find(tag: UInt32, fingerprint: UInt64, inSet set: Int) -> Int? {
        let base = set * Self.ways
        for slot in base..<(base + Self.ways)
        where self.tag(slot) == tag && word(slot) & Self.fingerprintMask == fingerprint {
            return slot
        }
        return nil
    }

    /// Frees the expired slots of one set; returns how many slots are free and one of them (-1 if none).
    @inline(__always)
    private mutating func reclaimExpired(inSet set: Int, now: UInt32) -> (count: Int, slot: Int) {
        var free = (count: 0, slot: -1)
        let base = set * Self.ways
        for slot in base..<(base + Self.ways) {
            if tag(slot) != 0 && isExpired(slot, now: now) {
                release(slot)
                counters.expired += 1
            }
            if tag(slot) == 0 { free = (free.count + 1, slot) }
        }
        return free
    }

    /// The least recently seen unconfirmed slot of two full sets (of every slot with `confirmedToo`), or nil.
    @inline(__always)
    private func oldestSlot(inSets first: Int, _ second: Int, now: UInt32, confirmedToo: Bool) -> Int? {
        var oldest: Int?
        var oldestAge: UInt32 = 0
        for index in 0..<(2 * Self.ways) {
            let slot = index < Self.ways ? first * Self.ways + index : second * Self.ways + index - Self.ways
            guard confirmedToo || word(slot) & Self.confirmedFlag == 0 else { continue }
            let age = now &- lastSeen(slot)
            if oldest == nil || age >= oldestAge { (oldest, oldestAge) = (slot, age) }
        }
        return oldest
    }

    @inline(__always)
    private func isExpired(_ slot: Int, now: UInt32) -> Bool {
        let word = word(slot)
        let timeout =
            word & Self.closingFlag != 0
            ? closingTimeout : word & Self.confirmedFlag != 0 ? idleTimeout : unconfirmedTimeout
        return now &- lastSeen(slot) > timeout
    }

    @inline(__always)
    private mutating func release(_ slot: Int) {
        setTag(slot, 0)
        count -= 1
    }

    // MARK: - Slot fields in a set's 128-byte block

    @inline(__always)
    private func offset(_ slot: Int, field: Int, width: Int) -> Int {
        (slot &>> 3) &* Self.bytesPerSet &+ field &+ (slot & 7) &* width
    }

    @inline(__always)
    private func tag(_ slot: Int) -> UInt32 {
        storage.load(fromByteOffset: offset(slot, field: 0, width: 4), as: UInt32.self)
    }

    @inline(__always)
    private func setTag(_ slot: Int, _ value: UInt32) {
        storage.storeBytes(of: value, toByteOffset: offset(slot, field: 0, width: 4), as: UInt32.self)
    }

    @inline(__always)
    private func lastSeen(_ slot: Int) -> UInt32 {
        storage.load(fromByteOffset: offset(slot, field: Self.seenOffset, width: 4), as: UInt32.self)
    }

    @inline(__always)
    private func setLastSeen(_ slot: Int, _ value: UInt32) {
        storage.storeBytes(of: value, toByteOffset: offset(slot, field: Self.seenOffset, width: 4), as: UInt32.self)
    }

    @inline(__always)
    private func word(_ slot: Int) -> UInt64 {
        storage.load(fromByteOffset: offset(slot, field: Self.fingerprintOffset, width: 8), as: UInt64.self)
    }

    @inline(__always)
    private func setWord(_ slot: Int, _ value: UInt64) {
        storage.storeBytes(
            of: value, toByteOffset: offset(slot, field: Self.fingerprintOffset, width: 8), as: UInt64.self)
    }
}
