import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testing

@testable import Testbed
@testable import lbbench

/// Privileged tests need root; under CI (`CI` set) they always run, so a missing privilege fails there.
let privileged = Testing.ConditionTrait.enabled(
    if: geteuid() == 0 || ProcessInfo.processInfo.environment["CI"] != nil,
    "needs root (network namespaces)")

@Suite(privileged)
struct TestbedTests {
    @Test func upBuildsTheNetworkAndDownLeavesNothing() throws {
        let linksBefore = try NetlinkSocket().links().map(\.name)
        let testbed = try VirtualNetwork(.init(servers: 2, clients: 2))
        let names = testbed.namespaceNames
        #expect(names.count == 5)
        #expect(Set(names).isSubset(of: Set(NetworkNamespace.all())))
        #expect(testbed.servers.map(\.address.address) == ["198.18.0.11", "198.18.0.12"])
        #expect(testbed.clients.map(\.address.address) == ["198.18.1.1", "198.18.1.2"])

        // Every host is a port of the switch's bridge.
        let ports = try testbed.switchNamespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            let bridge = try socket.requireLink(named: VirtualNetwork.bridgeName)
            return try socket.links().filter { $0.masterIndex == bridge.index }.map(\.name).sorted()
        }
        #expect(ports == ["c1", "c2", "s1", "s2"])

        testbed.down()
        #expect(Set(names).isDisjoint(with: Set(NetworkNamespace.all())))
        #expect(try NetlinkSocket().links().map(\.name) == linksBefore)
    }

    @Test func clientsReachServersThroughTheSwitch() throws {
        let testbed = try VirtualNetwork(.init(servers: 2, clients: 1))
        defer { testbed.down() }
        let server = testbed.servers[1].ip
        let client = testbed.clients[0].ip
        let receiver = try testbed.servers[1].namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in try DatagramSocket(bindTo: server, port: 9000) }
        }.get()
        try testbed.clients[0].namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                try DatagramSocket(bindTo: client, port: 0).send(Array("hello".utf8), to: server, port: 9000)
            }
        }.get()
        let received = try receiver.receive(timeoutMilliseconds: 2000)
        #expect(received.map { String(decoding: $0, as: UTF8.self) } == "hello")
    }

    @Test func aFailedBuildRemovesWhatItMadeAndNothingElse() throws {
        // Another run's switch namespace holds the name this build wants: the build fails, and the other stays.
        let id = VirtualNetwork.randomID()
        let other = try NetworkNamespace.create(named: "\(VirtualNetwork.namePrefix)\(id)-s1")
        defer { try? other.delete() }
        #expect(throws: NetlinkError.self) { try VirtualNetwork(.init(servers: 1, clients: 0), id: id) }
        #expect(NetworkNamespace.all().filter { $0.hasPrefix("\(VirtualNetwork.namePrefix)\(id)-") } == [other.name])
    }

    @Test func removeCleansUpWhatACrashedRunLeft() throws {
        let id = VirtualNetwork.randomID()
        let testbed = try VirtualNetwork(.init(servers: 1, clients: 1), id: id)
        testbed.detach()  // as if the process had died
        #expect(VirtualNetwork.remove(id: id).count == 3)
        #expect(NetworkNamespace.all().allSatisfy { !$0.hasPrefix("\(VirtualNetwork.namePrefix)\(id)-") })
    }
}
