import Foundation
import TapEngine
import Testing

@testable import Testbed

/// Relay delivery on a strict virtual switch (no unknown-unicast flooding, each port dropping frames whose source MAC
/// is not its host NIC's), where flood and directed delivery lose every request: the director answers ARP with its
/// own MAC and relays the others' frames from it.
@Suite(privileged, .serialized)
struct RelayEndToEndTests {
    static func farm(_ change: (inout VirtualFarm.Options) -> Void = { _ in }) throws -> VirtualFarm {
        try FarmEndToEndTests.farm {
            $0.delivery = .fixed(.relay)
            $0.testbed = .init(servers: 3, clients: 1, unknownUnicastFlooding: false, portSecurity: true)
            change(&$0)
        }
    }

    @Test func whenTheDirectorDiesTheNextOneTakesTheVIP() throws {
        let farm = try Self.farm()
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3]), "\(farm.log(1))")
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [1, 2, 3])
        farm.signal(1, SIGKILL)
        #expect(farm.waitForView("{2:100, 3:100}", nodes: [2, 3], seconds: 2))
        #expect(farm.log(2).contains("ARP leader and director"))
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [2, 3])
    }

    /// The director's drain: node 2 takes the VIP (clients learn its MAC), node 1 keeps serving its connections,
    /// whose frames now come relayed from node 2.
    @Test func openConnectionsSurviveAJoinAndTheDirectorsDrain() throws {
        try FarmEndToEndTests.connectionsSurviveAJoinAndTheDirectorsDrain(Self.farm { $0.startNodes = [1, 2] })
    }
}
