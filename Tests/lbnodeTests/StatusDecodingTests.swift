import Foundation
import Testing

@testable import lbnode

/// What `lbnode status` and `lbnode drain` make of a node's answer.
struct StatusDecodingTests {
    @Test func aNodeWithoutASnapshotYetIsStartingAndAnotherVersionsStatusSaysSo() throws {
        #expect(try ControlOptions.decodeStatus(Data("null".utf8)) == nil)
        let status = NodeStatus(
            farm: "web", node: 1, state: "active", leader: 1, delivery: "flood", agreed: true, generation: 3,
            members: [], flows: 0, engine: [:], offloads: [:], heartbeatsRejected: [:], lastChange: nil,
            lastFailover: nil)
        let current = try JSONEncoder().encode(status)
        #expect(try ControlOptions.decodeStatus(current)?.generation == 3)
        // A node of an older version: its status has no `loop`.
        var older = try #require(try JSONSerialization.jsonObject(with: current) as? [String: Any])
        older["loop"] = nil
        do {
            _ = try ControlOptions.decodeStatus(try JSONSerialization.data(withJSONObject: older))
            Issue.record("an older node's status was read")
        } catch {
            #expect("\(error)".contains("it runs another version of lbnode than this one"), "\(error)")
            #expect("\(error)".contains("restarting the node"))
        }
    }
}
