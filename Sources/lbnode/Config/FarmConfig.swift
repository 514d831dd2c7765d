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
        /// `delivery: auto`: `lbnode run` probes the network at start (`AutoDelivery`).
        var deliveryIsAuto = false
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

    /// What `delivery` may say.
    enum DeliveryChoice: String, CaseIterable {
        case auto, flood, directed, relay
    }

    static let defaultHeartbeatPort: UInt16 = 7946
    static let defaultMetricsAddress = "127.0.0.1:9946"
}

extension FarmConfig {
    /// The first key that differs from `new` and cannot change while running (everything but the weight, the rules
    /// and the checkers: a reload takes those), or `nil`.
    func firstFixedChange(to new: FarmConfig) -> String? {
        if farm != new.farm { return "the farm section" }
        var oldNode = node
        oldNode.weight = new.node.weight
        if oldNode != new.node { return "node (other than weight)" }
        if peers != new.peers { return "peers" }
        if controlSocket != new.controlSocket { return "control_socket" }
        if metricsAddress != new.metricsAddress { return "metrics_address" }
        if controlGroup != new.controlGroup { return "control_group" }
        return nil
    }
}
