import Foundation
import Hashing
import RouteSetup
import TapEngine
import Yams

extension FarmConfig {
    /// Reads and validates the file at `path`; the key file must exist and hold at least 16 bytes, and neither
    /// file, nor a checker's program named by its path, may be writable by other users (`FileSafety`).
    static func load(path: String) throws -> FarmConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, key: "", message: "cannot read the file (does it exist?)")
        }
        if let problem = FileSafety.problem(path) { throw ConfigError(file: path, line: 0, key: "", message: problem) }
        let config = try parse(String(decoding: data, as: UTF8.self), file: path)
        for (index, checker) in config.checkers.enumerated() {
            guard case .command(let command) = checker.kind,
                let program = command.split(separator: " ").first.map(String.init), program.hasPrefix("/"),
                let problem = FileSafety.problem(program)
            else { continue }
            throw ConfigError(file: path, line: 0, key: "checkers[\(index)].run", message: problem)
        }
        try config.checkKeyFile(configPath: path)
        return config
    }

    /// Validates `text` (no file is touched): every error names the file, the line and the key.
    static func parse(_ text: String, file: String) throws -> FarmConfig {
        let reader = ConfigReader(file: file)
        let root = try reader.document(text)
        try reader.rejectUnknown(
            root,
            known: [
                "farm", "node", "peers", "rules", "checkers", "control_socket", "control_group",
                "metrics_address",
            ])
        let farmSection = try reader.subsection(root, "farm")!
        let nodeSection = try reader.subsection(root, "node")!
        let farm = try readFarm(reader, farmSection)
        let node = try readNode(reader, nodeSection, vip: farm.vip)
        let peers = try readPeers(reader, root, node: node, vip: farm.vip)
        if let witness = farm.witness, witness.isIPv4 != node.address.isIPv4 {
            let section = try reader.subsection(root, "farm")!
            throw reader.error(
                section.child("witness"), section.line(of: "witness"), "must be of the same family as node.address")
        }
        return FarmConfig(
            farm: farm, node: node, peers: peers,
            rules: try reader.list(root, "rules").map { try readRule(reader, $0.node, path: $0.path) },
            checkers: try reader.list(root, "checkers").map { try readChecker(reader, $0.node, path: $0.path) },
            controlSocket: try reader.string(root, "control_socket", default: "/run/vipfarm/\(farm.name).sock"),
            metricsAddress: try readMetricsAddress(reader, root),
            controlGroup: try readControlGroup(reader, root),
            source: Source(
                file: file,
                lines: [
                    "farm.vip": farmSection.line(of: "vip"), "node.interface": nodeSection.line(of: "interface"),
                    "node.address": nodeSection.line(of: "address"),
                ]))
    }

    /// A group name or number that exists on this host.
    private static func readControlGroup(_ reader: ConfigReader, _ root: ConfigReader.Section) throws -> Group? {
        guard root.value("control_group") != nil else { return nil }
        let name = try reader.string(root, "control_group")
        guard let id = StreamServer.Peer.groupID(named: name) else {
            throw reader.error(
                root.child("control_group"), root.line(of: "control_group"),
                "no group '\(name)' on this host: create it (`groupadd \(name)`) or remove the key")
        }
        return Group(name: name, id: id)
    }

    private static func readFarm(_ reader: ConfigReader, _ section: ConfigReader.Section) throws -> Farm {
        try reader.rejectUnknown(
            section,
            known: [
                "name", "vip", "delivery", "key_file", "heartbeat_port",
                "heartbeat_interval_ms", "dead_after", "buckets", "table", "quorum", "witness", "handover_seconds",
            ])
        let name = try reader.string(section, "name")
        guard name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
        else {
            throw reader.error(
                section.child("name"), section.line(of: "name"),
                "'\(name)' must be 1 to 64 letters, digits, '.', '_' or '-'")
        }
        let vip = try address(reader, section, "vip")
        guard vip.prefixLength == vip.bytes.count * 8, vip.isUsableUnicast else {
            throw reader.error(section.child("vip"), section.line(of: "vip"), "must be one unicast address")
        }
        let buckets = try reader.integer(section, "buckets", in: 16...(1 << 20), default: BucketTable.defaultCount)
        guard buckets & (buckets - 1) == 0 else {
            throw reader.error(
                section.child("buckets"), section.line(of: "buckets"), "\(buckets) is not a power of two")
        }
        let delivery = try reader.choice(
            section, "delivery", among: DeliverySetting.all, default: DeliverySetting.fixed(.directed))
        return Farm(
            name: name, vip: vip, delivery: delivery.fixed ?? .relay, deliverySetting: delivery,
            keyFile: try reader.string(section, "key_file"),
            heartbeatPort: UInt16(
                try reader.integer(
                    section, "heartbeat_port", in: 1...65535,
                    default: Int(defaultHeartbeatPort))),
            heartbeatIntervalMilliseconds: try reader.integer(
                section, "heartbeat_interval_ms", in: 1...10_000,
                default: FarmConfig.defaultHeartbeatIntervalMilliseconds),
            deadAfter: try reader.integer(section, "dead_after", in: 2...1000, default: FarmConfig.defaultDeadAfter),
            buckets: buckets, table: try reader.choice(section, "table", default: TableAlgorithm.balanced),
            quorum: section.value("quorum") == nil
                ? nil : try reader.choice(section, "quorum", default: Membership.Quorum.majority),
            witness: try readWitness(reader, section, vip: vip),
            handoverSeconds: try reader.integer(
                section, "handover_seconds", in: 1...86_400, default: FarmConfig.defaultHandoverSeconds))
    }

    /// One unicast address that is not the VIP.
    private static func readWitness(_ reader: ConfigReader, _ section: ConfigReader.Section, vip: IPPrefix) throws
        -> IPAddress?
    {
        guard section.value("witness") != nil else { return nil }
        let prefix = try address(reader, section, "witness")
        guard prefix.prefixLength == prefix.bytes.count * 8, prefix.isUsableUnicast, prefix.bytes != vip.bytes,
            let witness = IPAddress(bytes: prefix.bytes)
        else {
            throw reader.error(
                section.child("witness"), section.line(of: "witness"),
                "must be one unicast address other than the VIP (a gateway every node should reach)")
        }
        return witness
    }

    private static func readNode(_ reader: ConfigReader, _ section: ConfigReader.Section, vip: IPPrefix) throws -> Node
    {
        try reader.rejectUnknown(section, known: [
                "id", "interface", "address", "weight", "tap", "prefilter", "kernel_delivery", "engine_threads",
            ])
        let address = try address(reader, section, "address")
        guard address.bytes != vip.bytes else {
            throw reader.error(
                section.child("address"), section.line(of: "address"),
                "is the VIP: the node's own address must be its interface's address")
        }
        return Node(
            id: NodeID(try reader.integer(section, "id", in: 1...65535))!,
            interface: try reader.string(section, "interface"), address: address,
            weight: UInt32(try reader.integer(section, "weight", in: 1...65535, default: 100)),
            tap: try reader.string(section, "tap", default: ServerSetup.defaultTapName),
            prefilter: try onOrOff(reader, section, "prefilter", default: true),
            kernelDelivery: try onOrOff(reader, section, "kernel_delivery", default: true),
            engineThreads: try engineThreads(reader, section))
    }

    /// `auto` (nil: the interface's receive queues, at most the CPUs) or a number of threads.
    private static func engineThreads(_ reader: ConfigReader, _ section: ConfigReader.Section) throws -> Int? {
        guard let value = section.value("engine_threads"), value.string != "auto" else { return nil }
        guard let number = value.int, (1...Node.maximumEngineThreads).contains(number) else {
            throw reader.error(
                section.child("engine_threads"), section.line(of: "engine_threads"),
                "'\(value.string ?? "?")' must be auto or a whole number from 1 to \(Node.maximumEngineThreads)")
        }
        return number
    }

    private static func onOrOff(
        _ reader: ConfigReader, _ section: ConfigReader.Section, _ key: String, default fallback: Bool
    ) throws -> Bool {
        switch try reader.string(section, key, default: fallback ? "on" : "off") {
        case "on": return true
        case "off": return false
        default: throw reader.error(section.child(key), section.line(of: key), "must be on or off")
        }
    }

    private static func readPeers(_ reader: ConfigReader, _ root: ConfigReader.Section, node: Node, vip: IPPrefix)
        throws -> [Peer]
    {
        var peers: [Peer] = []
        for (item, path) in try reader.list(root, "peers") {
            let section = try reader.section(item, path: path)
            try reader.rejectUnknown(section, known: ["id", "address"])
            let peer = Peer(
                id: NodeID(try reader.integer(section, "id", in: 1...65535))!,
                address: try address(reader, section, "address"))
            if peer.id == node.id || peers.contains(where: { $0.id == peer.id }) {
                throw reader.error(
                    section.child("id"), section.line(of: "id"),
                    "node \(peer.id) is already \(peer.id == node.id ? "this node" : "another peer"): IDs must be unique"
                )
            }
            if peer.address.bytes == node.address.bytes
                || peers.contains(where: { $0.address.bytes == peer.address.bytes })
            {
                throw reader.error(section.child("address"), section.line(of: "address"), "is already used")
            }
            if peer.address.bytes == vip.bytes {
                throw reader.error(
                    section.child("address"), section.line(of: "address"),
                    "is the VIP: a peer's address is the address of its own interface, the VIP one no server holds")
            }
            guard peer.address.isIPv4 == node.address.isIPv4 else {
                throw reader.error(
                    section.child("address"), section.line(of: "address"),
                    "must be of the same family as node.address (heartbeats use one socket)")
            }
            guard peers.count < Heartbeat.maximumEchoes else {
                throw reader.error(
                    path, section.line(of: "id"),
                    "a farm has at most \(Heartbeat.maximumEchoes + 1) nodes: a heartbeat names every node its sender "
                        + "hears and must fit one 1500-byte frame")
            }
            peers.append(peer)
        }
        return peers
    }

    private static func readRule(_ reader: ConfigReader, _ node: Yams.Node, path: String) throws -> Rule {
        let section = try reader.section(node, path: path)
        try reader.rejectUnknown(section, known: ["protocol", "ports", "mode", "affinity"])
        let proto: IPProtocol?
        switch try reader.string(section, "protocol", default: "any") {
        case "tcp": proto = .tcp
        case "udp": proto = .udp
        case "any": proto = nil
        case let other:
            throw reader.error(
                section.child("protocol"), section.line(of: "protocol"),
                "'\(other)' is not one of tcp, udp, any")
        }
        let ports = try portRanges(reader, section)
        let mode: Rule.Mode
        switch try reader.string(section, "mode", default: "balanced") {
        case "balanced": mode = .balanced(try reader.choice(section, "affinity", default: Affinity.none))
        case "single", "drop":
            if section.value("affinity") != nil {
                throw reader.error(
                    section.child("affinity"), section.line(of: "affinity"),
                    "only balanced rules have an affinity")
            }
            mode = try reader.string(section, "mode") == "single" ? .single : .drop
        case let other:
            throw reader.error(
                section.child("mode"), section.line(of: "mode"),
                "'\(other)' is not one of balanced, single, drop")
        }
        return Rule(proto: proto, ports: ports, mode: mode)
    }

    /// `"80,443,8000-8100"`; absent or empty = every port.
    private static func portRanges(_ reader: ConfigReader, _ section: ConfigReader.Section) throws
        -> [ClosedRange<UInt16>]
    {
        guard section.value("ports") != nil else { return [] }
        let text = section.value("ports")?.string ?? ""
        var ranges: [ClosedRange<UInt16>] = []
        for part in text.split(separator: ",") {
            let bounds = part.trimmingCharacters(in: .whitespaces).split(
                separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let low = bounds.first.flatMap({ UInt16($0) }), low > 0,
                let high = bounds.count == 2 ? UInt16(bounds[1]) : low, high >= low
            else {
                throw reader.error(
                    section.child("ports"), section.line(of: "ports"),
                    "'\(text)' must be ports or ranges from 1 to 65535, e.g. \"80,443,8000-8100\"")
            }
            ranges.append(low...high)
        }
        return ranges
    }

    private static func readChecker(_ reader: ConfigReader, _ node: Yams.Node, path: String) throws -> Checker {
        let section = try reader.section(node, path: path)
        try reader.rejectUnknown(section, known: ["type", "port", "run", "interval_ms", "fails", "rises"])
        let kind: Checker.Kind
        switch try reader.string(section, "type") {
        case "tcp": kind = .tcp(port: UInt16(try reader.integer(section, "port", in: 1...65535)))
        case "command": kind = .command(try reader.string(section, "run"))
        case let other:
            throw reader.error(section.child("type"), section.line(of: "type"), "'\(other)' is not one of tcp, command")
        }
        return Checker(
            kind: kind,
            intervalMilliseconds: try reader.integer(section, "interval_ms", in: 10...3_600_000, default: 1000),
            fails: try reader.integer(section, "fails", in: 1...100, default: 3),
            rises: try reader.integer(section, "rises", in: 1...100, default: 2))
    }

    private static func readMetricsAddress(_ reader: ConfigReader, _ root: ConfigReader.Section) throws -> String {
        let text = try reader.string(root, "metrics_address", default: defaultMetricsAddress)
        guard let colon = text.lastIndex(of: ":"),
            IPPrefix(
                String(text[..<colon]).trimmingCharacters(
                    in: CharacterSet(charactersIn: "[]"))) != nil, let port = UInt16(text[text.index(after: colon)...]),
            port > 0
        else {
            throw reader.error(
                "metrics_address", root.line(of: "metrics_address"),
                "'\(text)' must be address:port, e.g. 127.0.0.1:9946 or [::1]:9946")
        }
        return text
    }

    private static func address(_ reader: ConfigReader, _ section: ConfigReader.Section, _ key: String) throws
        -> IPPrefix
    {
        let text = try reader.string(section, key)
        guard let prefix = IPPrefix(text) else {
            throw reader.error(section.child(key), section.line(of: key), "'\(text)' is not an IP address")
        }
        return prefix
    }

    /// The key file must be readable by this user only and hold keys of at least 16 bytes (`KeyFile`).
    @discardableResult
    func checkKeyFile(configPath: String) throws -> KeyFile {
        do {
            return try KeyFile.load(path: farm.keyFile)
        } catch let error as KeyFileError {
            throw ConfigError(file: configPath, line: 0, key: "farm.key_file", message: error.description)
        }
    }
}
