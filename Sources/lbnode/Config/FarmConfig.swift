import Hashing
import RouteSetup
import TapEngine

/// The configuration of one node of a farm, as `lbnode run --config FILE` reads it (docs/configuration.md).
struct FarmConfig: Equatable {
    struct Farm: Equatable {
        /// Seeds the hash and derives the virtual MAC: the same on every node.
        var name: String
        var vip: IPPrefix
        /// The delivery mode in use: the configured one, or with `delivery: auto` the one the probe at start picked
        /// (until then relay, the mode that needs nothing of the switch).
        var delivery: Delivery
        /// `delivery:` as configured; with `auto`, `lbnode run` probes the network at start (`AutoDelivery`).
        var deliverySetting: DeliverySetting
        /// The shared secret for heartbeat authentication.
        var keyFile: String
        var heartbeatPort: UInt16
        var heartbeatIntervalMilliseconds: Int
        /// Missed intervals after which a silent peer is dead.
        var deadAfter: Int
        var buckets: Int
        var table: TableAlgorithm
        /// Which side of a partition serves; nil = the default (`effectiveQuorum`).
        var quorum: Membership.Quorum? = nil
        /// An address this node pings while it does not hear every peer (a gateway): cut off from it, it serves nothing.
        var witness: IPAddress? = nil
        /// How long a planned move of buckets keeps the connections that predate it on the node that had them.
        var handoverSeconds = FarmConfig.defaultHandoverSeconds
    }

    struct Node: Equatable {
        var id: NodeID
        var interface: String
        /// The source of this node's heartbeats.
        var address: IPPrefix
        var weight: UInt32
        var tap: String
        /// Keep other nodes' frames out of the ring in the kernel (eBPF), where the kernel allows it.
        var prefilter = true
        /// Let the kernel deliver the TCP frames of buckets in steady ownership itself (needs the prefilter).
        var kernelDelivery = true
        /// Engine threads; nil (`auto`): one per receive queue of the interface, at most one per CPU.
        var engineThreads: Int? = nil
        static let maximumEngineThreads = 64
    }

    struct Peer: Equatable {
        var id: NodeID
        var address: IPPrefix
    }

    struct Rule: Equatable {
        enum Mode: Equatable {
            case balanced(Affinity)
            case single
            case drop
        }
        /// `nil` = every protocol.
        var proto: IPProtocol?
        /// Empty = every port.
        var ports: [ClosedRange<UInt16>]
        var mode: Mode
    }

    struct Checker: Hashable {
        enum Kind: Hashable {
            /// A TCP connect to this port on the VIP must succeed.
            case tcp(port: UInt16)
            /// This command must exit 0.
            case command(String)
        }
        var kind: Kind
        var intervalMilliseconds: Int
        /// Consecutive failures that take the node out of the view.
        var fails: Int
        /// Consecutive successes that bring it back (hysteresis).
        var rises: Int
    }

    var farm: Farm
    var node: Node
    var peers: [Peer]
    var rules: [Rule]
    var checkers: [Checker]
    /// The control socket of `lbnode status` and `drain`.
    var controlSocket: String
    /// Where `/metrics` is served (host:port).
    var metricsAddress: String
    /// A group whose members may use the control socket, drain included (root always may).
    var controlGroup: Group? = nil

    struct Group: Equatable {
        var name: String
        var id: UInt32
    }

    /// Where the configuration came from, and the line of the keys that are checked against the host
    /// (`HostCheck`): "node.interface", "node.address", "farm.vip".
    var source = Source()

    struct Source: Equatable {
        var file = ""
        var lines: [String: Int] = [:]

        /// The `ConfigError` of a key checked against the host.
        func error(_ key: String, _ message: String) -> ConfigError {
            ConfigError(file: file, line: lines[key] ?? 0, key: key, message: message)
        }
    }

    /// Majority for three nodes or more; none for two (one survivor of two must serve).
    var effectiveQuorum: Membership.Quorum { farm.quorum ?? (peers.count >= 2 ? .majority : .none) }

    static let defaultHeartbeatPort: UInt16 = 7946
    /// A heartbeat every 4 ms, dead after 4 missed (16 ms): failover p99 under 25 ms, kill and link, both modes;
    /// 600 s of full load and floods at a generator's full speed without a view change (docs/benchmarks.md,
    /// "The default: 4 ms × 4"). A host that drops received frames gives silent peers 100 ms while it does.
    static let defaultHeartbeatIntervalMilliseconds = 4
    static let defaultDeadAfter = 4
    /// Long enough for the requests of an HTTP keep-alive connection; longer-lived connections need more
    /// (docs/configuration.md).
    static let defaultHandoverSeconds = 30
    static let defaultMetricsAddress = "127.0.0.1:9946"
}

extension FarmConfig {
    /// The keys (as the file names them) that differ in `new` and take effect only when lbnode starts: everything but
    /// the weight, the rules, the checkers and the key file's content, which a reload takes.
    func restartOnlyChanges(to new: FarmConfig) -> [String] {
        var changed: [String] = []
        func note<Value: Equatable>(_ key: String, _ old: Value, _ next: Value) {
            if old != next { changed.append(key) }
        }
        note("farm.name", farm.name, new.farm.name)
        note("farm.vip", farm.vip, new.farm.vip)
        note("farm.delivery", farm.deliverySetting, new.farm.deliverySetting)
        note("farm.key_file", farm.keyFile, new.farm.keyFile)
        note("farm.heartbeat_port", farm.heartbeatPort, new.farm.heartbeatPort)
        note("farm.heartbeat_interval_ms", farm.heartbeatIntervalMilliseconds, new.farm.heartbeatIntervalMilliseconds)
        note("farm.dead_after", farm.deadAfter, new.farm.deadAfter)
        note("farm.buckets", farm.buckets, new.farm.buckets)
        note("farm.table", farm.table, new.farm.table)
        note("farm.quorum", farm.quorum, new.farm.quorum)
        note("farm.witness", farm.witness, new.farm.witness)
        note("farm.handover_seconds", farm.handoverSeconds, new.farm.handoverSeconds)
        note("node.id", node.id, new.node.id)
        note("node.interface", node.interface, new.node.interface)
        note("node.address", node.address, new.node.address)
        note("node.tap", node.tap, new.node.tap)
        note("node.prefilter", node.prefilter, new.node.prefilter)
        note("node.kernel_delivery", node.kernelDelivery, new.node.kernelDelivery)
        note("node.engine_threads", node.engineThreads, new.node.engineThreads)
        note("peers", peers, new.peers)
        note("control_socket", controlSocket, new.controlSocket)
        note("metrics_address", metricsAddress, new.metricsAddress)
        note("control_group", controlGroup, new.controlGroup)
        return changed
    }

    /// This configuration with what a reload takes from `new` (the weight, the rules, the checkers); the keys of
    /// `restartOnlyChanges(to:)` keep their running values.
    func reloaded(from new: FarmConfig) -> FarmConfig {
        var next = self
        next.node.weight = new.node.weight
        next.rules = new.rules
        next.checkers = new.checkers
        next.source = new.source
        return next
    }
}

// The configuration holds RouteSetup's address types (what `lbnode setup` configures); the engine, the sockets and the
// heartbeats take Hashing's `IPAddress`. They are converted here, once (the module layout keeps the two apart).
extension FarmConfig.Farm {
    /// The VIP as the engine and the sockets take it.
    var vipAddress: IPAddress { IPAddress(bytes: vip.bytes)! }
}

extension FarmConfig.Node {
    /// This node's heartbeat address as sockets take it.
    var ip: IPAddress { IPAddress(bytes: address.bytes)! }
}

extension FarmConfig.Peer {
    /// The peer's heartbeat address as sockets take it.
    var ip: IPAddress { IPAddress(bytes: address.bytes)! }
}
