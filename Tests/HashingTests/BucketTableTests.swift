import Testing

@testable import Hashing

struct BucketTableTests {
    @Test func bucketIsTheLowBitsOfTheHash() throws {
        let view = try MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!])
        let table = try TableBuilder(seed: FarmSeed(value: 9), bucketCount: 256).build(view, generation: 1)
        #expect(table.count == 256)
        #expect(table.mask == 255)
        #expect(table.bucket(ofHash: 0xABCD_EF12) == 0x12)
        for hash: UInt64 in [0, 1, 0x1234_5678_9ABC_DEF0, .max] {
            let owner = try #require(table.owner(ofHash: hash))
            #expect(owner == table.owner(ofBucket: Int(hash & 255)))
            #expect(table.isOwned(hash: hash, by: owner))
            #expect(!table.isOwned(hash: hash, by: owner == NodeID(1)! ? NodeID(2)! : NodeID(1)!))
        }
    }

    @Test func sharesAddUpToTheBucketCount() throws {
        let view = try MembershipView(equalWeights: (1...5).map { NodeID($0)! })
        let table = try TableBuilder(seed: FarmSeed(value: 1)).build(view, generation: 7)
        #expect(table.shares.values.reduce(0, +) == 4096)
        #expect(Set(table.shares.keys) == Set(view.ids))
    }

    @Test func unownedTableHasNoOwners() throws {
        let table = try BucketTable.unowned(count: 64)
        #expect((0..<64).allSatisfy { table.owner(ofBucket: $0) == nil })
        #expect(throws: BucketCountError.self) { try BucketTable.unowned(count: 63) }
    }
}
