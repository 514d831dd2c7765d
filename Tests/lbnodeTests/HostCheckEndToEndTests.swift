import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testing

/// `lbnode check` and `lbnode run` against the host they run on: a configuration written for another machine is
/// refused with the file, the line, the key and what to do, and `run` then leaves the host exactly as it was.
@Suite(privileged)
struct HostCheckEndToEndTests {
    /// A configuration for node 1 of three on `interface` at `address`, with `vip`; written next to a key.
    static func write(
        in directory: String, interface: String = "eth0", address: String = "198.18.0.11",
        vip: String = "198.18.0.100", peer: String = "198.18.0.12"
    ) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = directory + "/web.key"
        if !FileManager.default.fileExists(atPath: key) {
            try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: key))
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
        }
        let path = directory + "/web.yaml"
        try """
            farm:
              name: web
              vip: \(vip)
              delivery: flood
              key_file: \(key)
            node:
              id: 1
              interface: \(interface)
              address: \(address)
            peers:
              - { id: 2, address: \(peer) }
              - { id: 3, address: 198.18.0.13 }
            control_socket: \(directory)/web.sock

            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func checkRefusesAConfigurationForAnotherHostWithTheLineAndAFix() throws {
        try SetupCommandTests.withServer { namespace, state in
            let cases: [(change: (String) throws -> String, expected: String)] = [
                ({ try Self.write(in: $0, interface: "eth9") }, "web.yaml:8: node.interface: no interface 'eth9'"),
                ({ try Self.write(in: $0, address: "198.18.0.99") },
                 "web.yaml:9: node.address: 198.18.0.99 is not an address of eth0 (which has 198.18.0.11/15): set"),
                ({ try Self.write(in: $0, peer: "198.18.0.100") }, "web.yaml:11: peers[0].address: is the VIP"),
                ({ try Self.write(in: $0, vip: "198.18.0.11") }, "web.yaml:9: node.address: is the VIP"),
            ]
            for (index, item) in cases.enumerated() {
                let path = try item.change(state + "/c\(index)")
                let check = try SetupCommandTests.lbnode(["check", "--config", path], in: namespace)
                #expect(check.status == 1, "\(check.errors)")
                #expect(check.errors.contains(item.expected), "\(check.errors)")
            }
            // The VIP on a host interface already: refused too; a VIP off the interface's subnets: a warning.
            try namespace.run { () throws(NetlinkError) in
                let socket = try NetlinkSocket()
                try socket.addAddress(IPPrefix("198.18.0.100/32")!, toLink: try socket.requireLink(named: "eth0").index)
            }
            let held = try SetupCommandTests.lbnode(["check", "--config", try Self.write(in: state + "/h")], in: namespace)
            #expect(held.status == 1 && held.errors.contains("web.yaml:3: farm.vip: 198.18.0.100 is already an address of eth0"), "\(held.errors)")
            let away = try SetupCommandTests.lbnode(
                ["check", "--config", try Self.write(in: state + "/w", vip: "203.0.113.7")], in: namespace)
            #expect(away.status == 0 && away.errors.contains("warning: ") && away.errors.contains("outside eth0's subnets"), "\(away.errors)")
            // --skip-host checks the file alone.
            let skipped = try SetupCommandTests.lbnode(
                ["check", "--skip-host", "--config", try Self.write(in: state + "/s", interface: "eth9")], in: namespace)
            #expect(skipped.status == 0, "\(skipped.errors)")
        }
    }

    @Test func runWithAWrongAddressLeavesTheHostAsItWas() throws {
        try SetupCommandTests.withServer { namespace, state in
            let before = try Self.hostState(in: namespace)
            let path = try Self.write(in: state + "/r", address: "198.18.0.99")
            let run = try SetupCommandTests.lbnode(
                ["run", "--config", path, "--state-dir", state + "/run"], in: namespace)
            #expect(run.status == 1, "\(run.errors)")
            #expect(run.errors.contains("error") && run.errors.contains("node.address: 198.18.0.99 is not an address of eth0"), "\(run.errors)")
            #expect(try Self.hostState(in: namespace) == before)
            #expect(!FileManager.default.fileExists(atPath: state + "/run/lb0.json"))
        }
    }

    @Test func runWithTheHeartbeatPortTakenLeavesTheHostAsItWas() throws {
        try SetupCommandTests.withServer { namespace, state in
            let before = try Self.hostState(in: namespace)
            let path = try Self.write(in: state + "/p")
            let squatter = try namespace.run { () throws(NetlinkError) in
                Result { () throws(SystemCallError) in
                    let socket = try Socket(for: IPAddress("198.18.0.11")!, type: SOCK_DGRAM)
                    try socket.bind(IPAddress("198.18.0.11")!, port: 7946)
                    return socket
                }
            }.get()
            defer { squatter.close() }
            let run = try SetupCommandTests.lbnode(
                ["run", "--config", path, "--state-dir", state + "/run"], in: namespace)
            #expect(run.status == 1 && run.errors.contains("uses UDP port 7946"), "\(run.errors)")
            #expect(try Self.hostState(in: namespace) == before)
        }
    }

    /// The links, addresses and ARP sysctls of the namespace: what `setup` would change.
    static func hostState(in namespace: NetworkNamespace) throws -> [String] {
        try namespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            let links = try socket.links().map { "\($0.name) \($0.flags & 1)" }.sorted()
            let addresses = try socket.addresses().map { "\($0.linkIndex) \($0.prefix)" }.sorted()
            let sysctls = ["arp_ignore", "arp_announce"].map { name in
                (try? String(contentsOfFile: "/proc/sys/net/ipv4/conf/eth0/\(name)", encoding: .utf8)) ?? "?"
            }
            return links + addresses + sysctls
        }
    }
}
