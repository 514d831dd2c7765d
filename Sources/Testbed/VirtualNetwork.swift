import Foundation
import RouteSetup

/// A virtual network on one machine: a Linux bridge in a namespace of its own is the switch (MAC learning on, as a
/// real switch), and every server and client is a namespace with one veth "cable" (`eth0`) to it.
///
/// Addresses come from 198.18.0.0/15 (reserved for benchmarking) and no namespace has a route out. Every name
/// carries the testbed's random ID (`vf-<id>-...`), so parallel or crashed runs never collide, and `down` (or
/// `deinit`) removes everything; `VirtualNetwork.removeAll()` removes what crashed runs left.
public final class VirtualNetwork {
    /// What to build.
    public struct Description: Codable, Sendable {
        public var servers: Int
        public var clients: Int
        /// Whether the switch floods unicast frames for unknown MACs to every port, as physical switches do. Off, it
        /// is a switch where `flood` delivery cannot work and `directed` must.
        public var unknownUnicastFlooding = true
        /// Port security, as a strict virtual switch's default policy (forged transmits and MAC changes rejected):
        /// each host's port drops, before the bridge learns from it, frames whose source MAC is not the host NIC's.
        /// With `unknownUnicastFlooding` off, neither `flood` nor `directed` delivery can work there; `relay` must.
        public var portSecurity = false
        /// Whether hosts also get IPv6 addresses, from 2001:2::/48 (reserved for benchmarking, RFC 5180).
        public var ipv6 = false
        /// Whether the clients sit behind a router (a namespace forwarding between two switches): the servers are
        /// 198.18.0.0/24, the clients 198.19.0.0/24, and the router learns the VIP by ordinary ARP.
        public var routedClients = false
        /// An 802.1Q VLAN: every host's addresses are on `eth0.<id>`, so every frame on the switch is tagged.
        public var vlan: UInt16? = nil
        /// What the hosts' NICs do with checksums and segments.
        public var offloads = Offloads.kernelDefaults
        /// The MTU of every cable, bridge and host interface (nil: the kernel's 1500); 9000 for jumbo frames.
        public var mtu: UInt32? = nil

        public init(
            servers: Int, clients: Int, unknownUnicastFlooding: Bool = true, portSecurity: Bool = false,
            ipv6: Bool = false, routedClients: Bool = false, vlan: UInt16? = nil, offloads: Offloads = .kernelDefaults,
            mtu: UInt32? = nil
        ) {
            self.servers = servers
            self.clients = clients
            self.unknownUnicastFlooding = unknownUnicastFlooding
            self.portSecurity = portSecurity
            self.ipv6 = ipv6
            self.routedClients = routedClients
            self.vlan = vlan
            self.offloads = offloads
            self.mtu = mtu
        }

        /// The offload shape of the testbed's NICs.
        public enum Offloads: String, Codable, Sendable, CaseIterable {
            /// A real host's: every veth keeps the kernel's offloads (transmit checksum offload and TSO, as a VM's or
            /// a container's NIC sends), and server ports merge received segments (GRO on the server's `eth0`, TSO
            /// off on the switch side so the switch hands it segments to merge), as a physical NIC or virtio-net
            /// does. Frames reach the servers with partial checksums and up to 64 KB long. The default.
            case kernelDefaults = "kernel-defaults"
            /// A wire's, unrealistic: no checksum offload on any host and no GRO, so every frame arrives finished and
            /// at most MTU-sized. Only for measurements that must compare with a plain wire.
            case wireLike = "wire-like"
        }

        /// At most 200 of each, so addresses stay in one /24 per role.
        public func validate() throws {
            guard (1...200).contains(servers) else { throw FarmError("--servers must be from 1 to 200") }
            guard (0...200).contains(clients) else { throw FarmError("--clients must be from 0 to 200") }
        }
    }

    /// One namespace on the switch.
    public struct Host: Sendable {
        public enum Role: String, Codable, Sendable { case server, client }
        public let role: Role
        /// 1-based, per role.
        public let number: Int
        public let namespace: NetworkNamespace
        /// The bridge port on the switch side.
        public let switchPort: String
        public let address: IPPrefix
        /// 2001:2::11, ... for servers, 2001:2::1:1, ... for clients, when the testbed has IPv6.
        public let address6: IPPrefix?
        public let mac: HardwareAddress?

        /// Servers are 198.18.0.11, .12, ...; clients 198.18.1.1, .2, ...; all in 198.18.0.0/15. Behind a router,
        /// servers are 198.18.0.11/24, ... and clients 198.19.0.11/24, ...
        public static func address(role: Role, number: Int, routed: Bool = false) -> IPPrefix {
            switch (role, routed) {
            case (.server, false): IPPrefix("198.18.0.\(10 + number)/15")!
            case (.client, false): IPPrefix("198.18.1.\(number)/15")!
            case (.server, true): IPPrefix("198.18.0.\(10 + number)/24")!
            case (.client, true): IPPrefix("198.19.0.\(10 + number)/24")!
            }
        }

        public static func address6(role: Role, number: Int) -> IPPrefix {
            switch role {
            case .server: IPPrefix("2001:2::\(10 + number)/64")!
            case .client: IPPrefix("2001:2::1:\(number)/64")!
            }
        }
    }

    /// Every testbed namespace starts with this.
    public static let namePrefix = "vf-"
    /// The cable of every host.
    public static let hostInterface = "eth0"

    /// The interface with the host's addresses: the cable, or its VLAN interface.
    public var hostInterface: String { description.vlan.map { "\(Self.hostInterface).\($0)" } ?? Self.hostInterface }
    /// The bridge in the switch namespace.
    public static let bridgeName = "br0"
    /// The clients' bridge, behind the router (`routedClients`).
    public static let clientBridgeName = "br1"

    public let id: String
    public let description: Description
    public let switchNamespace: NetworkNamespace
    public private(set) var hosts: [Host] = []
    /// The namespaces this object created, removed by `down`.
    fileprivate var created: [NetworkNamespace] = []

    public var servers: [Host] { hosts.filter { $0.role == .server } }
    public var clients: [Host] { hosts.filter { $0.role == .client } }

    /// Builds the testbed; if any step fails, what was built is removed before the error is thrown.
    public init(_ description: Description, id: String = VirtualNetwork.randomID()) throws {
        try description.validate()
        self.id = id
        self.description = description
        switchNamespace = NetworkNamespace(named: "\(Self.namePrefix)\(id)-sw")
        TestbedRegistry.register(id)
        do {
            created.append(try NetworkNamespace.create(named: switchNamespace.name))
            try switchNamespace.run { () throws(NetlinkError) in
                let socket = try NetlinkSocket()
                try socket.addBridge(Self.bridgeName)
                try socket.changeLink(named: Self.bridgeName, LinkChange(up: true, mtu: description.mtu))
                // A switch forwards frames as they are: no netfilter on bridged traffic (br_netfilter would check
                // and drop malformed IP headers that a real switch passes on). The files exist only with it loaded.
                for family in ["iptables", "ip6tables", "arptables"] {
                    let sysctl = Sysctl("net.bridge.bridge-nf-call-\(family)")
                    if (try? sysctl.read()) != nil { try sysctl.write("0") }
                }
            }
            if description.routedClients { try addRouter() }
            for number in 1...description.servers { hosts.append(try addHost(.server, number)) }
            for number in stride(from: 1, through: description.clients, by: 1) {
                hosts.append(try addHost(.client, number))
            }
            if description.portSecurity { try securePorts() }
        } catch {
            down()
            throw error
        }
    }

    deinit {
        down()
    }

    /// The namespace names of this testbed.
    public var namespaceNames: [String] { [switchNamespace.name] + hosts.map(\.namespace.name) }

    /// Removes every namespace the testbed created (their veths and the bridge go with them). Safe to call twice.
    public func down() {
        for namespace in created.reversed() { try? namespace.delete() }
        created = []
        TestbedRegistry.unregister(id)
    }

    /// Turns unknown-unicast flooding on or off on every port of the servers' switch while the testbed runs: a network
    /// that changes under a running farm.
    public func setUnknownUnicastFlooding(_ enabled: Bool) throws {
        try switchNamespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            for host in hosts where host.role == .server || !description.routedClients {
                try socket.setBridgePortFlooding(host.switchPort, enabled: enabled)
            }
        }
    }

    /// Makes the switch flood every frame sent to `host` to all its ports, as it floods the VIP's frames in flood
    /// delivery (learning off on the host's port and its MAC forgotten), or learn the host again: straight traffic to
    /// a server then pays what flooding costs this testbed, without vipfarm in its path.
    public func setFlooding(toward host: Host, enabled: Bool) throws {
        try switchNamespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            try socket.setBridgePortLearning(host.switchPort, enabled: !enabled)
            if enabled, let mac = host.mac { try socket.forgetBridgeEntry(mac, onPort: host.switchPort) }
        }
    }

    /// Leaves the testbed running after this object is gone (`lbbench testbed up`).
    public func detach() {
        created = []
        TestbedRegistry.unregister(id)
    }

    /// Removes the namespaces of the testbed `id`; returns their names.
    @discardableResult
    public static func remove(id: String) -> [String] {
        let names = NetworkNamespace.all().filter { $0.hasPrefix("\(namePrefix)\(id)-") }
        for name in names { try? NetworkNamespace(named: name).delete() }
        return names
    }

    /// Every testbed namespace on the machine (`vf-*`): this run's, another's, or a crashed one's.
    public static var allNamespaces: [String] { NetworkNamespace.all().filter { $0.hasPrefix(namePrefix) } }

    /// Removes every testbed namespace on the machine (`vf-*`), including those of crashed runs; returns their names.
    @discardableResult
    public static func removeAll() -> [String] {
        let names = allNamespaces
        for name in names { try? NetworkNamespace(named: name).delete() }
        return names
    }

    /// Eight hex digits.
    public static func randomID() -> String {
        let value = UInt32.random(in: 0...UInt32.max)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Creates a host namespace, a veth from the switch to it, and its address.
    private func addHost(_ role: Host.Role, _ number: Int) throws -> Host {
        let short = role == .server ? "s\(number)" : "c\(number)"
        let namespace = try NetworkNamespace.create(named: "\(Self.namePrefix)\(id)-\(short)")
        created.append(namespace)
        if description.ipv6 {
            // No duplicate address detection on the interfaces to come (the VIP's TAP too): for about a second a new
            // IPv6 address is tentative and unusable, and a testbed's addresses are unique by construction.
            try namespace.run { () throws(NetlinkError) in
                for scope in ["default", "all"] { try Sysctl("net.ipv6.conf.\(scope).accept_dad").write("0") }
            }
        }
        let routed = description.routedClients
        let address = Host.address(role: role, number: number, routed: routed)
        let address6 = description.ipv6 ? Host.address6(role: role, number: number) : nil
        let hostSide = "\(short)h"
        try switchNamespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            try socket.addVethPair(short, peer: hostSide)
            let bridge = try socket.requireLink(
                named: routed && role == .client ? Self.clientBridgeName : Self.bridgeName)
            try socket.changeLink(named: short, LinkChange(up: true, masterIndex: bridge.index))
            if !description.unknownUnicastFlooding { try socket.setBridgePortFlooding(short, enabled: false) }
            if let mtu = description.mtu {
                try socket.changeLink(named: short, LinkChange(mtu: mtu))
                try socket.changeLink(named: hostSide, LinkChange(mtu: mtu))
            }
            if description.offloads == .kernelDefaults && role == .server {
                // A NIC's GRO merges the segments of a peer that sends them one by one: the switch port segments.
                try LinkOffloads.set(.segmentation, on: short, enabled: false)
            }
            try namespace.withDescriptor { (fd) throws(NetlinkError) in
                try socket.moveLink(named: hostSide, toNamespace: fd, newName: Self.hostInterface)
            }
        }
        let mac = try namespace.run { () throws(NetlinkError) -> HardwareAddress? in
            let socket = try NetlinkSocket()
            try socket.changeLink(named: Self.hostInterface, LinkChange(up: true))
            if let vlan = description.vlan {
                try socket.addVLAN(hostInterface, on: Self.hostInterface, id: vlan)
                try socket.changeLink(named: hostInterface, LinkChange(up: true, mtu: description.mtu))
            }
            for interface in Set([Self.hostInterface, hostInterface]) {
                switch description.offloads {
                case .kernelDefaults:
                    if role == .server { try LinkOffloads.set(.receiveMerging, on: interface, enabled: true) }
                case .wireLike:
                    try LinkOffloads.set(.transmitChecksum, on: interface, enabled: false)
                    try LinkOffloads.set(.receiveMerging, on: interface, enabled: false)
                }
            }
            let link = try socket.requireLink(named: hostInterface)
            try socket.addAddress(address, toLink: link.index)
            if let address6 { try socket.addAddress(address6, toLink: link.index) }
            if routed {  // the other side's /24 through the router
                let (other, gateway) =
                    role == .server ? ("198.19.0.0/24", "198.18.0.1") : ("198.18.0.0/24", "198.19.0.1")
                try socket.addRoute(
                    Route(destination: IPPrefix(other)!, linkIndex: link.index, gateway: IPPrefix(gateway)!))
            }
            return link.mac
        }
        return Host(
            role: role, number: number, namespace: namespace, switchPort: short, address: address,
            address6: address6, mac: mac)
    }
}

extension VirtualNetwork {
    /// Each host's port drops frames from any source MAC but its NIC's, at the bridge's prerouting hook (before the
    /// bridge learns the source: a forged MAC is neither forwarded nor learned).
    fileprivate func securePorts() throws {
        let rules = hosts.compactMap { host in
            host.mac.map { "iifname \"\(host.switchPort)\" ether saddr != \($0) counter drop" }
        }
        try switchNamespace.run { () throws(NetlinkError) in
            Result {
                try NFTables.apply(
                    """
                    table bridge vfports {
                      chain pre {
                        type filter hook prerouting priority -200; policy accept;
                        \(rules.joined(separator: "\n    "))
                      }
                    }
                    """)
            }
        }.get()
    }

    /// The router namespace (`routedClients`): `eth0` on the servers' switch (198.18.0.1/24), `eth1` on the clients'
    /// (198.19.0.1/24), forwarding between them.
    fileprivate func addRouter() throws {
        let router = try NetworkNamespace.create(named: "\(Self.namePrefix)\(id)-rt")
        created.append(router)
        try switchNamespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            try socket.addBridge(Self.clientBridgeName)
            try socket.changeLink(named: Self.clientBridgeName, LinkChange(up: true, mtu: description.mtu))
            for (port, bridge, inside) in [("rt0", Self.bridgeName, "eth0"), ("rt1", Self.clientBridgeName, "eth1")] {
                try socket.addVethPair(port, peer: port + "h")
                if let mtu = description.mtu { try socket.changeLink(named: port + "h", LinkChange(mtu: mtu)) }
                try socket.changeLink(
                    named: port,
                    LinkChange(
                        up: true, mtu: description.mtu, masterIndex: try socket.requireLink(named: bridge).index))
                try router.withDescriptor { (fd) throws(NetlinkError) in
                    try socket.moveLink(named: port + "h", toNamespace: fd, newName: inside)
                }
            }
        }
        try router.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            for (name, address) in [("eth0", "198.18.0.1/24"), ("eth1", "198.19.0.1/24")] {
                try socket.changeLink(named: name, LinkChange(up: true))
                try socket.addAddress(IPPrefix(address)!, toLink: try socket.requireLink(named: name).index)
            }
            try Sysctl("net.ipv4.ip_forward").write("1")
        }
    }

    /// Cuts (or restores) server `number`'s cable: its port on the switch goes down (up), and with it the carrier of
    /// the server's interface.
    public func setCable(ofServer number: Int, up: Bool) throws {
        let port = servers[number - 1].switchPort
        try switchNamespace.run { () throws(NetlinkError) in
            try NetlinkSocket().changeLink(named: port, LinkChange(up: up))
        }
    }
}
