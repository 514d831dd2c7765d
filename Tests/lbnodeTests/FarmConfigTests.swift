import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testing

@testable import lbnode

struct FarmConfigTests {
    /// The example of the issue, as an operator writes it.
    static let example = """
        farm:
          name: web                     # also seeds the hash and derives the virtual MAC
          vip: 198.18.0.100             # IPv4 or IPv6
          delivery: directed            # or flood (DESIGN.md)
          key_file: /etc/vipfarm/web.key  # shared secret for heartbeat authentication
          heartbeat_port: 7946
          heartbeat_interval_ms: 10
          dead_after: 3                 # missed intervals
          buckets: 4096
        node:
          id: 1
          interface: eth0
          address: 198.18.0.11          # source of this node's heartbeats
          weight: 100
        peers:
          - { id: 2, address: 198.18.0.12 }
          - { id: 3, address: 198.18.0.13 }
        rules:                          # first match wins; default: balanced, affinity none
          - { protocol: tcp, ports: "80,443", mode: balanced, affinity: single }
          - { protocol: tcp, ports: "22", mode: single }     # one node at a time, by priority, with failover
        checkers:
          - { type: tcp, port: 80, interval_ms: 500, fails: 3 }
          - { type: command, run: "/usr/local/bin/check-app", interval_ms: 1000 }
        """

    @Test func theExampleParses() throws {
        let config = try FarmConfig.parse(Self.example, file: "web.yaml")
        #expect(config.farm.name == "web")
        #expect(config.farm.vip == IPPrefix("198.18.0.100"))
        #expect(config.farm.delivery == .directed)
        #expect(config.farm.heartbeatIntervalMilliseconds == 10)
        #expect(config.node.id == NodeID(1))
        #expect(config.node.tap == "lb0")
        #expect(config.peers.map(\.id) == [NodeID(2)!, NodeID(3)!])
        #expect(
            config.rules == [
                .init(proto: .tcp, ports: [80...80, 443...443], mode: .balanced(.single)),
                .init(proto: .tcp, ports: [22...22], mode: .single),
            ])
        #expect(config.checkers[0] == .init(kind: .tcp(port: 80), intervalMilliseconds: 500, fails: 3, rises: 2))
        #expect(config.checkers[1].kind == .command("/usr/local/bin/check-app"))
        #expect(config.controlSocket == "/run/vipfarm/web.sock")
        #expect(config.metricsAddress == "127.0.0.1:9946")
    }

    @Test func defaultsFillWhatIsLeftOut() throws {
        let config = try FarmConfig.parse(
            """
            farm: { name: db, vip: 2001:db8::100, key_file: /k }
            node: { id: 7, interface: eth1, address: 2001:db8::7 }
            """, file: "db.yaml")
        #expect(config.farm.heartbeatPort == 7946)
        #expect(config.farm.heartbeatIntervalMilliseconds == 4 && config.farm.deadAfter == 4)
        #expect(config.farm.buckets == 4096)
        #expect(config.farm.table == .balanced)
        #expect(config.node.weight == 100)
        #expect(config.node.prefilter)
        #expect(config.farm.handoverSeconds == 30)
        #expect(config.peers.isEmpty && config.rules.isEmpty && config.checkers.isEmpty)
    }

    /// `node.prefilter` is on or off, and nothing else; turning it off needs a restart.
    @Test func engineThreadsAreAutoOrANumber() throws {
        func node(_ setting: String) -> String {
            """
            farm: { name: db, vip: 198.18.0.100, key_file: /k }
            node: { id: 7, interface: eth1, address: 198.18.0.7\(setting) }
            """
        }
        #expect(try FarmConfig.parse(node(""), file: "db.yaml").node.engineThreads == nil)
        #expect(try FarmConfig.parse(node(", engine_threads: auto"), file: "db.yaml").node.engineThreads == nil)
        #expect(try FarmConfig.parse(node(", engine_threads: 4"), file: "db.yaml").node.engineThreads == 4)
        for wrong in ["0", "65", "many"] {
            #expect {
                try FarmConfig.parse(node(", engine_threads: \(wrong)"), file: "db.yaml")
            } throws: { error in
                "\(error)".contains("db.yaml:2: node.engine_threads: '\(wrong)' must be auto or a whole number from 1 to 64")
            }
        }
    }

    @Test func thePrefilterIsOnOrOff() throws {
        func node(_ value: String) -> String {
            """
            farm: { name: db, vip: 198.18.0.100, key_file: /k }
            node: { id: 7, interface: eth1, address: 198.18.0.7, prefilter: \(value) }
            """
        }
        let off = try FarmConfig.parse(node("off"), file: "db.yaml")
        #expect(!off.node.prefilter)
        #expect(try FarmConfig.parse(node("on"), file: "db.yaml").restartOnlyChanges(to: off) == ["node.prefilter"])
        #expect {
            try FarmConfig.parse(node("maybe"), file: "db.yaml")
        } throws: { error in
            "\(error)".contains("db.yaml:2: node.prefilter: must be on or off")
        }
    }

    /// `farm.handover_seconds` is read, and a change of it waits for a restart (every node must apply the same).
    @Test func theHandoverWindowIsConfigured() throws {
        let config = try FarmConfig.parse(Self.replacing(with: "  handover_seconds: 3600"), file: "web.yaml")
        #expect(config.farm.handoverSeconds == 3600)
        let example = try FarmConfig.parse(Self.example, file: "web.yaml")
        #expect(example.restartOnlyChanges(to: config) == ["farm.handover_seconds"])
        #expect(example.reloaded(from: config).farm.handoverSeconds == 30)
    }

    @Test func autoDeliveryIsProbedAtStart() throws {
        let config = try FarmConfig.parse(
            Self.example.replacingOccurrences(of: "delivery: directed", with: "delivery: auto"), file: "web.yaml")
        #expect(config.farm.deliverySetting == .auto)
        #expect(config.farm.delivery == .relay)  // until the probe says otherwise: the mode that needs nothing
        #expect(try FarmConfig.parse(Self.example, file: "web.yaml").farm.deliverySetting != .auto)
    }

    /// Each bad value is refused with its line and key.
    @Test(arguments: [
        ("  vip: 198.18.0.1000", "web.yaml:3: farm.vip: '198.18.0.1000' is not an IP address"),
        ("  vip: 198.18.0.0/24", "web.yaml:3: farm.vip: must be one unicast address"),
        ("  delivery: broadcast", "web.yaml:4: farm.delivery: 'broadcast' is not one of auto, flood, directed, relay"),
        ("  buckets: 4000", "web.yaml:9: farm.buckets: 4000 is not a power of two"),
        ("  heartbeat_interval_ms: 0", "web.yaml:7: farm.heartbeat_interval_ms: '0' must be a whole number from 1"),
        ("  colour: blue", "farm.colour: unknown key"),
        ("  - { id: 2, address: 198.18.0.12 }\n  - { id: 2, address: 198.18.0.14 }", "peers[1].id: node 2 is already"),
        ("  - { protocol: tcp, ports: \"80-\", mode: balanced }", "rules[0].ports: '80-' must be ports or ranges"),
        ("  - { protocol: sctp }", "rules[0].protocol: 'sctp' is not one of tcp, udp, any"),
        ("  - { mode: drop, affinity: single }", "rules[0].affinity: only balanced rules have an affinity"),
        ("  - { type: http, port: 80 }", "checkers[0].type: 'http' is not one of tcp, command"),
        ("  witness: 198.18.0.100", "web.yaml:2: farm.witness: must be one unicast address other than the VIP"),
        ("  witness: 2001:db8::1", "web.yaml:2: farm.witness: must be of the same family as node.address"),
        ("  handover_seconds: 0", "web.yaml:2: farm.handover_seconds: '0' must be a whole number from 1 to 86400"),
    ])
    func badValuesNameTheirLineAndKey(replacement: String, expected: String) throws {
        let config = Self.replacing(with: replacement)
        #expect {
            try FarmConfig.parse(config, file: "web.yaml")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    /// Replaces the line of the example that starts like `replacement` (or appends to its list).
    static func replacing(with replacement: String) -> String {
        var lines = example.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let key = replacement.split(separator: ":").first.map(String.init) ?? ""
        if replacement.hasPrefix("  - { id") {
            let start = lines.firstIndex { $0.hasPrefix("  - { id: 2") }!
            lines[start] = replacement
        } else if replacement.hasPrefix("  - { type") {
            let start = lines.firstIndex { $0.hasPrefix("  - { type: tcp") }!
            lines[start] = replacement
        } else if replacement.hasPrefix("  - {") {
            let start = lines.firstIndex { $0.hasPrefix("  - { protocol: tcp, ports: \"80,443\"") }!
            lines[start] = replacement
        } else if let index = lines.firstIndex(where: { $0.hasPrefix(key + ":") }) {
            lines[index] = replacement
        } else {
            lines.insert(replacement, at: 1)
        }
        return lines.joined(separator: "\n")
    }

    @Test func aWitnessAndAControlGroupAreRead() throws {
        let config = try FarmConfig.parse(
            Self.replacing(with: "  witness: 198.18.0.1") + "\ncontrol_group: root\n", file: "web.yaml")
        #expect(config.farm.witness == IPAddress("198.18.0.1"))
        #expect(config.controlGroup == FarmConfig.Group(name: "root", id: 0))
        #expect(try FarmConfig.parse(Self.example + "\ncontrol_group: \"0\"\n", file: "f").controlGroup?.id == 0)
        #expect {
            try FarmConfig.parse(Self.example + "\ncontrol_group: vipfarm-no-such-group\n", file: "web.yaml")
        } throws: { "\($0)".contains("web.yaml:24: control_group: no group 'vipfarm-no-such-group' on this host") }
    }

    /// A heartbeat echoes every node its sender hears and must fit one frame: 57 nodes at most.
    @Test func aFarmHasAtMost57Nodes() throws {
        func farm(peers: Int) -> String {
            "farm: { name: web, vip: 198.18.0.100, key_file: /k }\nnode: { id: 1, interface: eth0, address: 198.18.1.1 }\n"
                + "peers:\n" + (2...(peers + 1)).map { "  - { id: \($0), address: 198.18.1.\($0) }" }.joined(separator: "\n")
        }
        #expect(try FarmConfig.parse(farm(peers: 56), file: "f").peers.count == 56)
        #expect { try FarmConfig.parse(farm(peers: 57), file: "f") } throws: {
            "\($0)".contains("peers[56]: a farm has at most 57 nodes")
        }
    }

    @Test func missingSectionsAndKeysAreNamed() {
        #expect(throws: ConfigError.self) { try FarmConfig.parse("node: { id: 1 }", file: "f") }
        #expect {
            try FarmConfig.parse("farm: { vip: 198.18.0.100, key_file: /k }\nnode: {}", file: "f")
        } throws: { "\($0)".contains("farm.name: missing") }
        #expect { try FarmConfig.parse("", file: "f") } throws: { "\($0)".contains("empty") }
        #expect { try FarmConfig.parse("farm: [1, 2", file: "f") } throws: { "\($0)".contains("not valid YAML") }
    }

    @Test func theKeyFileMustHoldASecret() throws {
        let directory = NSTemporaryDirectory() + "vipfarm-config-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keyPath = directory + "/web.key"
        let configPath = directory + "/web.yaml"
        try Self.example.replacingOccurrences(of: "/etc/vipfarm/web.key", with: keyPath)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        // A missing key: create one, never "write random bytes to the path" (that would replace an existing key).
        #expect { try FarmConfig.load(path: configPath) } throws: {
            "\($0)".contains("\(keyPath) does not exist: create the farm's key once (`lbnode keygen \(keyPath)`)")
        }
        func write(_ data: Data, mode: Int = 0o600) throws {
            try data.write(to: URL(fileURLWithPath: keyPath))
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: keyPath)
        }
        try write(Data(repeating: 7, count: 8))
        #expect { try FarmConfig.load(path: configPath) } throws: { "\($0)".contains("a key of 8 bytes") }
        for mode in [0o644, 0o640, 0o660] {  // its group may not read it either
            try write(Data(repeating: 7, count: 32), mode: mode)
            #expect { try FarmConfig.load(path: configPath) } throws: { "\($0)".contains("chmod 600 \(keyPath)") }
        }
        try write(Data(repeating: 7, count: 32))
        #expect(try FarmConfig.load(path: configPath).farm.keyFile == keyPath)
        #expect(try KeyFile.load(path: keyPath).keys == [Data(repeating: 7, count: 32)])
        // A configuration, or a checker's program, that another user can write is refused: it controls the node.
        try FileManager.default.setAttributes([.posixPermissions: 0o664], ofItemAtPath: configPath)
        #expect { try FarmConfig.load(path: configPath) } throws: { "\($0)".contains("chmod go-w \(configPath)") }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: configPath)
        let checker = directory + "/check.sh"
        try "#!/bin/sh\nexit 0\n".write(toFile: checker, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o757], ofItemAtPath: checker)
        try Self.example.replacingOccurrences(of: "/etc/vipfarm/web.key", with: keyPath)
            .replacingOccurrences(of: "/usr/local/bin/check-app", with: "\(checker) --quick")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        #expect { try FarmConfig.load(path: configPath) } throws: {
            "\($0)".contains("checkers[1].run") && "\($0)".contains("chmod go-w \(checker)")
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: checker)
        #expect(try FarmConfig.load(path: configPath).checkers.count == 2)
        // A rotation: two hex lines, the first signs.
        try write(Data((String(repeating: "ab", count: 32) + "\n" + String(repeating: "0c", count: 16) + "\n").utf8))
        #expect(
            try KeyFile.load(path: keyPath).keys == [
                Data(repeating: 0xAB, count: 32), Data(repeating: 0x0C, count: 16),
            ])
    }
}
