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

    /// `lbbench apps`' reference for flood delivery: with flooding toward server 1 on, the switch copies a client's
    /// datagram to server 1 to server 2 as well (server 1 still gets it); off, the switch learns server 1 again and
    /// server 2 sees nothing.
    @Test func floodingTowardAServerCopiesItsFramesToEveryPort() throws {
        let testbed = try VirtualNetwork(.init(servers: 2, clients: 1))
        defer { testbed.down() }
        let (first, second, client) = (testbed.servers[0], testbed.servers[1], testbed.clients[0])
        let receiver = try first.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in try DatagramSocket(bindTo: first.ip, port: 9000) }
        }.get()
        let sniffer = try second.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                try ProbePort(interface: VirtualNetwork.hostInterface, etherType: 0x0800)
            }
        }.get()
        let sender = try client.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in try DatagramSocket(bindTo: client.ip, port: 0) }
        }.get()
        /// Sends `text` to server 1 and returns whether server 1 got it and whether server 2 saw it pass.
        func send(_ text: String) throws -> (delivered: Bool, flooded: Bool) {
            try sender.send(Array(text.utf8), to: first.ip, port: 9000)
            let delivered = try receiver.receive(timeoutMilliseconds: 2000) == Array(text.utf8)
            var flooded = false
            let deadline = ContinuousClock.now + .milliseconds(300)
            while !flooded, ContinuousClock.now < deadline {
                guard let frame = sniffer.receive(timeoutMilliseconds: 50) else { continue }
                flooded =
                    Array(frame.payload.dropFirst(16).prefix(4)) == first.ip.bytes
                    && frame.payload.suffix(text.utf8.count).elementsEqual(text.utf8)
            }
            return (delivered, flooded)
        }
        #expect(try send("learn").delivered, "server 1 answers ARP: the switch learns where it is")
        #expect(try send("learnt") == (true, false), "a learnt server's frames go to its port alone")
        try testbed.setFlooding(toward: first, enabled: true)
        #expect(try send("flooded") == (true, true), "flooding on: server 2 sees server 1's frames too")
        try testbed.setFlooding(toward: first, enabled: false)
        // The switch learns server 1 again from the next frame it sends.
        try first.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in try receiver.send(Array("back".utf8), to: client.ip, port: 9) }
        }.get()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try send("learnt again") == (true, false), "flooding off: server 1's frames go to its port alone")
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
