import Hashing
import TapEngine
import Testing

@testable import lbnode

/// The handover marks that keep established connections through planned moves.
struct EngineStateBuilderTests {
    static func builder(node: UInt16, delivery: String = "directed") throws -> EngineStateBuilder {
        let config = try FarmConfig.parse(
            FarmConfigTests.example.replacingOccurrences(of: "  id: 1\n", with: "  id: \(node)\n")
                .replacingOccurrences(of: "{ id: \(node),", with: "{ id: 1,")
                .replacingOccurrences(of: "delivery: directed", with: "delivery: \(delivery)"), file: "web.yaml")
        return try EngineStateBuilder(config: config, virtualMAC: 0x02_00_00_00_00_01)
    }

    static func view(_ ids: [UInt16]) throws -> MembershipView {
        try MembershipView(ids.map { Member(id: NodeID(rawValue: $0)!, weight: 100) })
    }

    static let all: Set<NodeID> = [NodeID(1)!, NodeID(2)!, NodeID(3)!]

    @Test func aJoinThenADrainStillSendsOldConnectionsToTheirFirstOwner() throws {
        var director = try Self.builder(node: 1)
        let two = try director.state(
            for: Self.view([1, 2]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
        let joined = try director.state(
            for: Self.view([1, 2, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
        // Node 1 drains and keeps directing: the buckets node 3 took at the join still point at their first owner.
        let drained = try director.state(
            for: Self.view([2, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
        #expect(drained.isDirector)
        for bucket in 0..<two.table.count {
            let first = two.table.owner(ofBucket: bucket)!.rawValue
            let owner = drained.table.owner(ofBucket: bucket)!.rawValue
            let moved = joined.table.owner(ofBucket: bucket)!.rawValue != first || owner != first
            #expect(drained.previousOwners[bucket] == (moved ? first : 0))
            #expect(
                drained.releasedBuckets[bucket] == (first == 1 || joined.table.owner(ofBucket: bucket) == NodeID(1)))
        }
        // When the window closes the marks go.
        let closed = try director.state(
            for: Self.view([2, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: false)
        #expect(closed.previousOwners.allSatisfy { $0 == 0 } && !closed.releasedBuckets.contains(true))
    }

    /// Flood delivery: node 2 stops for a restart. Each survivor takes its buckets at once (no hold) and sends their
    /// established connections to node 2, the first owner, and only while node 2 is stopped; a live first owner (a
    /// join's) serves its connections itself, and is named nowhere.
    @Test func inFloodTheNewOwnerSendsAStoppedNodesConnectionsBackToIt() throws {
        for node: UInt16 in [1, 3] {
            var builder = try Self.builder(node: node, delivery: "flood")
            let three = try builder.state(
                for: Self.view([1, 2, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
            #expect(three.previousOwners.allSatisfy { $0 == 0 })
            let stopped = try builder.state(
                for: Self.view([1, 3]), alive: Self.all, stopped: [NodeID(2)!], leader: NodeID(1), macs: [:],
                handover: true)
            let taken = (0..<three.table.count).filter {
                three.table.owner(ofBucket: $0) == NodeID(2) && stopped.table.owner(ofBucket: $0)?.rawValue == node
            }
            #expect(taken.count > 500)
            #expect(taken.allSatisfy { stopped.previousOwners[$0] == 2 && stopped.handoverBuckets[$0] })
            #expect(stopped.previousOwners.enumerated().allSatisfy { $0.element == 0 || taken.contains($0.offset) })
            // Node 2 is back (alive, not stopped): it serves its connections again, and nothing is sent to it.
            let back = try builder.state(
                for: Self.view([1, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
            #expect(back.previousOwners.allSatisfy { $0 == 0 })
        }
    }

    /// Flood delivery, a restart within the window of the farm's start (node 2 first, then 1 and 3): at node 2's
    /// stop the `balanced` table also moves a few buckets between the survivors. Their first owner is node 2, but the
    /// survivor that gave them up served them since and has connections there that the taker does not know: the
    /// taker must not send those to node 2, whose kernel would reset them (a CI run saw one). Only buckets that no node
    /// but node 2 and the taker ever had go to node 2.
    @Test func inFloodABucketAnotherLiveNodeServedIsNotSentToTheStoppedFirstOwner() throws {
        var fromTheOtherSurvivor = 0
        for node: UInt16 in [1, 3] {
            var builder = try Self.builder(node: node, delivery: "flood")
            var tables: [EngineState] = []
            for ids: [UInt16] in [[2], [1, 2], [1, 2, 3]] {
                tables.append(
                    try builder.state(
                        for: Self.view(ids), alive: Self.all, leader: NodeID(1), macs: [:], handover: true))
            }
            let stopped = try builder.state(
                for: Self.view([1, 3]), alive: Self.all, stopped: [NodeID(2)!], leader: NodeID(1), macs: [:],
                handover: true)
            for bucket in 0..<stopped.table.count where stopped.table.owner(ofBucket: bucket)?.rawValue == node {
                let owners = Set(tables.compactMap { $0.table.owner(ofBucket: bucket)?.rawValue })
                let onlyTwoAndThis = owners.isSubset(of: [node, 2]) && owners.contains(2)
                #expect(stopped.previousOwners[bucket] == (onlyTwoAndThis ? 2 : 0), "node \(node), bucket \(bucket)")
                if tables[2].table.owner(ofBucket: bucket)?.rawValue == 4 - node { fromTheOtherSurvivor += 1 }
            }
        }
        #expect(fromTheOtherSurvivor > 0, "the stop moved no bucket between the survivors: the case is not covered")
    }

    @Test func bucketsOfADeadNodeAreTakenAtOnceEvenWithinAWindow() throws {
        var builder = try Self.builder(node: 2)
        let two = try builder.state(
            for: Self.view([1, 2]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
        let joined = try builder.state(
            for: Self.view([1, 2, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
        // Node 1 dies: nothing points at it any more, and what node 2 takes from it is no handover.
        let survivors: Set<NodeID> = [NodeID(2)!, NodeID(3)!]
        let state = try builder.state(
            for: Self.view([2, 3]), alive: survivors, leader: NodeID(2), macs: [:], handover: true)
        #expect(!state.previousOwners.contains(1))
        let fromOne = (0..<state.table.count).filter {
            joined.table.owner(ofBucket: $0) == NodeID(1) && state.table.owner(ofBucket: $0) == NodeID(2)
        }
        #expect(fromOne.count > 500)
        #expect(fromOne.allSatisfy { !state.handoverBuckets[$0] })
        // What node 2 gave node 3 at the join is still handed over: node 2 serves its connections there.
        let toThree = (0..<state.table.count).filter {
            two.table.owner(ofBucket: $0) == NodeID(2) && joined.table.owner(ofBucket: $0) == NodeID(3)
                && state.table.owner(ofBucket: $0) == NodeID(3)
        }
        #expect(toThree.count > 500)
        #expect(toThree.allSatisfy { state.previousOwners[$0] == 2 && state.releasedBuckets[$0] })
    }

    /// A node that joined and died within the handover window: the buckets it had taken (their connections opened on
    /// it, the first owner never had them) are taken at once by their new owners, so its clients are reset, not left
    /// without an answer until the window closes.
    @Test func bucketsAJoinerTookAreTakenAtOnceWhenItDies() throws {
        for node: UInt16 in [1, 3] {
            var builder = try Self.builder(node: node)
            let two = try builder.state(
                for: Self.view([1, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
            let joined = try builder.state(
                for: Self.view([1, 2, 3]), alive: Self.all, leader: NodeID(1), macs: [:], handover: true)
            let survivors: Set<NodeID> = [NodeID(1)!, NodeID(3)!]
            let state = try builder.state(
                for: Self.view([1, 3]), alive: survivors, leader: NodeID(1), macs: [:], handover: true)
            let joinersBuckets = (0..<state.table.count).filter { joined.table.owner(ofBucket: $0) == NodeID(2) }
            #expect(joinersBuckets.count > 1000)
            #expect(joinersBuckets.allSatisfy { !state.handoverBuckets[$0] && !state.releasedBuckets[$0] })
            #expect(joinersBuckets.allSatisfy { state.previousOwners[$0] == 0 })
            // The table is back to what it was before the join: the survivors own what they owned then.
            #expect(
                (0..<state.table.count).allSatisfy { two.table.owner(ofBucket: $0) == state.table.owner(ofBucket: $0) })
        }
    }
}
