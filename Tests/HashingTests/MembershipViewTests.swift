import Testing

@testable import Hashing

struct MembershipViewTests {
    @Test func sortsMembersByID() throws {
        let view = try MembershipView([3, 1, 2].map { Member(id: NodeID($0)!, weight: 10) })
        #expect(view.ids == [NodeID(1)!, NodeID(2)!, NodeID(3)!])
        #expect(view.description == "{1:10, 2:10, 3:10}")
    }

    @Test func refusesDuplicatesAndBadWeights() {
        #expect(throws: MembershipViewError.duplicateID(NodeID(2)!)) {
            try MembershipView([2, 2].map { Member(id: NodeID($0)!, weight: 1) })
        }
        #expect(throws: MembershipViewError.weightOutOfRange(NodeID(4)!, 0)) {
            try MembershipView([Member(id: NodeID(4)!, weight: 0)])
        }
        #expect(throws: MembershipViewError.weightOutOfRange(NodeID(4)!, 65_536)) {
            try MembershipView([Member(id: NodeID(4)!, weight: 65_536)])
        }
        #expect(NodeID(0) == nil)
        #expect(NodeID(65_536) == nil)
    }

    @Test func digestDependsOnMembersAndWeightsNotOrder() throws {
        let seed = FarmSeed(farmName: "web")
        let a = try MembershipView([Member(id: NodeID(1)!, weight: 100), Member(id: NodeID(2)!, weight: 100)])
        let b = try MembershipView([Member(id: NodeID(2)!, weight: 100), Member(id: NodeID(1)!, weight: 100)])
        let c = try MembershipView([Member(id: NodeID(1)!, weight: 100), Member(id: NodeID(2)!, weight: 101)])
        #expect(a.digest(seed: seed) == b.digest(seed: seed))
        #expect(a.digest(seed: seed) != c.digest(seed: seed))
        #expect(a.digest(seed: seed) != a.removing(NodeID(2)!).digest(seed: seed))
    }

    @Test func addingReplacesTheWeightOfAnExistingMember() throws {
        let view = try MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!])
        let changed = try view.adding(Member(id: NodeID(2)!, weight: 7))
        #expect(changed.members.count == 2)
        #expect(changed.members.last?.weight == 7)
    }
}
