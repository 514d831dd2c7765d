/// A node's identity in the farm: a configured integer from 1 to 65535, stable across restarts.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    /// `nil` for 0, which bucket tables use for "no owner".
    public init?(rawValue: UInt16) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }

    /// `nil` outside 1...65535.
    public init?(_ value: Int) {
        guard let raw = UInt16(exactly: value) else { return nil }
        self.init(rawValue: raw)
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// One member of a view: a node and its weight.
public struct Member: Hashable, Sendable {
    /// The largest weight: keeps every product in the table builder well inside 64 bits.
    public static let maximumWeight: UInt32 = 65_535

    public let id: NodeID
    /// The node's relative share of the buckets, 1...65535.
    public let weight: UInt32

    public init(id: NodeID, weight: UInt32) {
        self.id = id
        self.weight = weight
    }
}

/// Why a set of members is not a valid view.
public enum MembershipViewError: Error, Equatable, CustomStringConvertible {
    case duplicateID(NodeID)
    case weightOutOfRange(NodeID, UInt32)

    public var description: String {
        switch self {
        case .duplicateID(let id): "node \(id) appears twice in the view"
        case .weightOutOfRange(let id, let weight):
            "node \(id) has weight \(weight); weights go from 1 to \(Member.maximumWeight)"
        }
    }
}

/// The active, healthy nodes of a farm with their weights: the only input of the bucket table.
///
/// Members are kept sorted by ID, never in discovery order, so that every node derives the same table and digest.
public struct MembershipView: Hashable, Sendable, CustomStringConvertible {
    /// The members, sorted by ID.
    public let members: [Member]

    /// - Throws: `MembershipViewError` for a duplicate ID or a weight outside 1...65535.
    public init(_ members: [Member]) throws(MembershipViewError) {
        let sorted = members.sorted { $0.id < $1.id }
        for (index, member) in sorted.enumerated() {
            if index > 0 && sorted[index - 1].id == member.id { throw .duplicateID(member.id) }
            if member.weight == 0 || member.weight > Member.maximumWeight {
                throw .weightOutOfRange(member.id, member.weight)
            }
        }
        self.members = sorted
    }

    /// A view of nodes with equal weights (tests, benchmarks).
    public init(equalWeights ids: [NodeID], weight: UInt32 = 100) throws(MembershipViewError) {
        try self.init(ids.map { Member(id: $0, weight: weight) })
    }

    /// The empty view: every bucket unowned.
    public static let empty = try! MembershipView([])

    public var ids: [NodeID] { members.map(\.id) }
    public var totalWeight: UInt64 { members.reduce(0) { $0 + UInt64($1.weight) } }
    public var isEmpty: Bool { members.isEmpty }

    /// The view without `id` (unchanged when `id` is not a member).
    public func removing(_ id: NodeID) -> MembershipView {
        try! MembershipView(members.filter { $0.id != id })
    }

    /// The view with `member` added, or with its weight replaced when its ID is already there.
    public func adding(_ member: Member) throws(MembershipViewError) -> MembershipView {
        try MembershipView(members.filter { $0.id != member.id } + [member])
    }

    /// A 64-bit digest of the view (IDs and weights), which heartbeats carry so nodes can tell that they agree.
    public func digest(seed: FarmSeed) -> UInt64 {
        FlowHash.hash(
            seed: seed.forDomain(.viewDigest),
            words: members.map { UInt64($0.id.rawValue) << 32 | UInt64($0.weight) } + [UInt64(members.count)]
        )
    }

    public var description: String {
        "{" + members.map { "\($0.id):\($0.weight)" }.joined(separator: ", ") + "}"
    }
}
