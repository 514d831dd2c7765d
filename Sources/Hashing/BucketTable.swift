/// Why a bucket count was refused.
public struct BucketCountError: Error, Equatable, CustomStringConvertible {
    public let count: Int
    public var description: String {
        "bucket count \(count) is not a power of two from \(BucketTable.countRange.lowerBound) to "
            + "\(BucketTable.countRange.upperBound)"
    }
}

/// Which node owns each of B hash buckets (B a power of two), with the generation of the view it was built from.
///
/// `bucket = hash & (B - 1)`. Lookups are O(1), read one `UInt16` and never allocate, so the engine may call them per
/// packet. A table is immutable: the control plane builds a new one (`TableBuilder`) and the engine swaps it in between
/// batches.
public struct BucketTable: Sendable, Equatable {
    /// Allowed bucket counts: powers of two in this range.
    public static let countRange = 16...(1 << 20)
    /// The default bucket count.
    public static let defaultCount = 4096

    /// The generation of the view this table was built from; newer tables have larger generations.
    public let generation: UInt64
    /// Owner node ID per bucket; 0 = no owner (empty view).
    @usableFromInline let owners: [UInt16]
    /// `B - 1`.
    public let mask: UInt64

    /// Checks that `count` is a valid bucket count.
    public static func validate(count: Int) throws(BucketCountError) {
        guard countRange.contains(count), count & (count - 1) == 0 else { throw BucketCountError(count: count) }
    }

    /// A table with the given owners (index = bucket); `count` must be a valid bucket count.
    init(owners: [UInt16], generation: UInt64) {
        precondition(Self.countRange.contains(owners.count) && owners.count & (owners.count - 1) == 0)
        self.owners = owners
        self.generation = generation
        self.mask = UInt64(owners.count - 1)
    }

    /// A table in which no bucket has an owner.
    public static func unowned(count: Int = defaultCount, generation: UInt64 = 0) throws(BucketCountError)
        -> BucketTable
    {
        try validate(count: count)
        return BucketTable(owners: Array(repeating: 0, count: count), generation: generation)
    }

    /// B, the number of buckets.
    public var count: Int { owners.count }

    /// The bucket of a hash: its low bits.
    @inlinable @inline(__always)
    public func bucket(ofHash hash: UInt64) -> Int { Int(truncatingIfNeeded: hash & mask) }

    /// The owner of `bucket`, or `nil` when the view was empty.
    @inlinable @inline(__always)
    public func owner(ofBucket bucket: Int) -> NodeID? { NodeID(rawValue: owners[bucket]) }

    /// The owner of the bucket of `hash`.
    @inlinable @inline(__always)
    public func owner(ofHash hash: UInt64) -> NodeID? { owner(ofBucket: bucket(ofHash: hash)) }

    /// Whether `node` owns the bucket of `hash`: the engine's per-packet question, a load and a compare.
    @inlinable @inline(__always)
    public func isOwned(hash: UInt64, by node: NodeID) -> Bool { owners[bucket(ofHash: hash)] == node.rawValue }

    /// The raw owner ID of every bucket (0: none), for a pass over the whole table without an optional per bucket.
    public var rawOwners: [UInt16] { owners }

    /// How many buckets each node owns (nodes that own none are absent). Counted in an array by ID, then gathered:
    /// a dictionary update per bucket costs a view change milliseconds at 4096 buckets in a debug build.
    public var shares: [NodeID: Int] {
        var counts = [Int](repeating: 0, count: Int(UInt16.max) + 1)
        var highest = 0
        counts.withUnsafeMutableBufferPointer { counts in
            owners.withUnsafeBufferPointer { owners in
                var bucket = 0
                while bucket < owners.count {
                    let raw = Int(owners[bucket])
                    counts[raw] += 1
                    if raw > highest { highest = raw }
                    bucket += 1
                }
            }
        }
        var result: [NodeID: Int] = [:]
        for raw in 1..<(highest + 1) where counts[raw] > 0 { result[NodeID(rawValue: UInt16(raw))!] = counts[raw] }
        return result
    }

    /// The buckets whose owner differs in `other` (same bucket count required).
    public func changedBuckets(comparedTo other: BucketTable) -> [Int] {
        precondition(count == other.count, "tables of different sizes")
        return owners.indices.filter { owners[$0] != other.owners[$0] }
    }
}
