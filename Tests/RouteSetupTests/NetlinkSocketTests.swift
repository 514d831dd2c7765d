import Foundation
import Testing

@testable import RouteSetup

/// The netlink operations on a real kernel, in a fresh namespace each.
@Suite(privileged)
struct NetlinkSocketTests {
    @Test func linkSettingsRoundTrip() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (socket) throws(NetlinkError) in
                let mac = HardwareAddress("02:00:5e:10:20:30")!
                try socket.changeLink(named: "peer0", LinkChange(up: false, noARP: true, mac: mac, mtu: 1400))
                let link = try socket.requireLink(named: "peer0")
                #expect(link.mac == mac)
                #expect(link.mtu == 1400)
                #expect(link.isNoARP)
                #expect(!link.isUp)
                #expect(link.kind == "veth")
                #expect(try socket.link(named: "nothing0") == nil)
                #expect(throws: NetlinkError.self) { try socket.requireLink(named: "nothing0") }
            }
        }
    }

    @Test func bridgeAndPorts() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (socket) throws(NetlinkError) in
                try socket.addBridge("br9")
                let bridge = try socket.requireLink(named: "br9")
                #expect(bridge.kind == "bridge")
                try socket.changeLink(named: "peer0", LinkChange(masterIndex: bridge.index))
                #expect(try socket.requireLink(named: "peer0").masterIndex == bridge.index)
                try socket.deleteLink(named: "br9")
                #expect(try socket.link(named: "br9") == nil)
            }
        }
    }

    @Test func addressesAreAddedOnceAndRemoved() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (socket) throws(NetlinkError) in
                let index = try socket.requireLink(named: "peer0").index
                let alias = IPPrefix("198.18.7.7/32")!
                try socket.addAddress(alias, toLink: index)
                #expect(try socket.addresses(onLink: index).contains(alias))
                #expect { try socket.addAddress(alias, toLink: index) } throws: {
                    ($0 as? NetlinkError)?.isAlreadyExists == true
                }
                try socket.removeAddress(alias, fromLink: index)
                #expect(try !socket.addresses(onLink: index).contains(alias))
            }
        }
    }

    @Test func routesInATableRulesAndNeighbours() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (socket) throws(NetlinkError) in
                let index = try socket.requireLink(named: ScratchNamespace.interface).index
                let route = Route(
                    destination: IPPrefix("198.19.0.0/24")!, linkIndex: index,
                    gateway: IPPrefix("198.18.0.1")!, table: 100)
                try socket.addRoute(route)
                #expect { try socket.addRoute(route) } throws: { ($0 as? NetlinkError)?.isAlreadyExists == true }
                try socket.removeRoute(route)
                #expect(throws: NetlinkError.self) { try socket.removeRoute(route) }

                let rule = PolicyRule(priority: 1000, source: IPPrefix("198.18.0.100/32")!, table: 100)
                try socket.addRule(rule)
                #expect { try socket.addRule(rule) } throws: { ($0 as? NetlinkError)?.isAlreadyExists == true }
                try socket.removeRule(rule)

                let neighbour = IPPrefix("198.18.0.50")!
                try socket.addNeighbour(neighbour, mac: HardwareAddress("02:00:00:00:00:50")!, linkIndex: index)
                #expect {
                    try socket.addNeighbour(neighbour, mac: HardwareAddress("02:00:00:00:00:50")!, linkIndex: index)
                } throws: { ($0 as? NetlinkError)?.isAlreadyExists == true }
                try socket.removeNeighbour(neighbour, linkIndex: index)
                #expect(throws: NetlinkError.self) { try socket.removeNeighbour(neighbour, linkIndex: index) }
            }
        }
    }

    @Test func sysctlsReadAndWriteInTheirNamespace() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (_) throws(NetlinkError) in
                let sysctl = Sysctl.ipv4("eth0", "arp_ignore")
                #expect(sysctl.path == "/proc/sys/net/ipv4/conf/eth0/arp_ignore")
                try sysctl.write("2")
                #expect(try sysctl.read() == "2")
                #expect(throws: NetlinkError.self) { try Sysctl.ipv4("nothing0", "arp_ignore").read() }
            }
            // The root namespace has no eth0 of this test: the change stayed inside.
        }
    }

    @Test func vlanInterfaceNamesKeepTheirDots() {
        #expect(Sysctl.ipv4("eth0.100", "rp_filter").path == "/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        #expect(Sysctl("net.core.somaxconn").path == "/proc/sys/net/core/somaxconn")
    }
}

extension NetlinkSocketTests {
    @Test func bridgePortFloodingCanBeTurnedOff() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (socket) throws(NetlinkError) in
                try socket.addBridge("br8")
                try socket.changeLink(
                    named: "peer0", LinkChange(masterIndex: try socket.requireLink(named: "br8").index))
                try socket.setBridgePortFlooding("peer0", enabled: false)
            }
            let shown = try scratch.namespace.run { () throws(NetlinkError) in
                Result { () throws -> String in
                    let process = Process()
                    let pipe = Pipe()
                    process.executableURL = URL(fileURLWithPath: "/sbin/bridge")
                    process.arguments = ["-d", "link", "show", "dev", "peer0"]
                    process.standardOutput = pipe
                    try process.run()
                    process.waitUntilExit()
                    return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                }
            }.get()
            #expect(shown.contains("flood off"))
        }
    }
}
