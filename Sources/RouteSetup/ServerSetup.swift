/// What `lbnode setup` prepares on a server: the TAP device that holds the VIP with the farm's virtual MAC, and the
/// sysctls that keep the kernel from answering ARP for the VIP on the farm interface.
///
/// Order, as keepalived takes over an address: the TAP and its MAC first, then the ARP sysctls, and the VIP last, so
/// that the interface never answers ARP for the VIP with its own MAC, not even for a moment.
public struct ServerSetup: Codable, Equatable, Sendable {
    public static let defaultTapName = "lb0"
    public static let defaultStateDirectory = "/run/vipfarm"

    /// The NIC that faces the clients (`eth0`).
    public var interface: String
    /// The VIP, as a host prefix (/32 or /128).
    public var vip: IPPrefix
    /// The TAP device that holds the VIP.
    public var tapName: String
    /// The TAP's own address: the farm's virtual MAC, which client frames carry; in relay delivery the interface's
    /// own MAC, which they carry there.
    public var virtualMAC: HardwareAddress
    /// Relay delivery: the kernel's own path for the VIP on the interface is closed (`IngressDrop`).
    public var relay: Bool? = nil

    public init(
        interface: String, vip: IPPrefix, tapName: String = defaultTapName, virtualMAC: HardwareAddress,
        relay: Bool = false
    ) {
        self.interface = interface
        self.vip = vip
        self.tapName = tapName
        self.virtualMAC = virtualMAC
        self.relay = relay ? true : nil
    }

    /// The ingress drop of relay delivery, named for this setup's TAP.
    public var ingressDrop: IngressDrop { IngressDrop(interface: interface, vip: vip, tapName: tapName) }

    /// The sysctls and the values the setup needs.
    ///
    /// - `arp_ignore = 1` on the interface: answer ARP only for addresses of the interface itself, never for the VIP
    ///   (which is on the TAP); the engine's ARP responder answers for it with the virtual MAC.
    /// - `arp_announce = 2` on the interface: never use the VIP as the source of the host's own ARP requests.
    /// - `rp_filter = 2` (loose) on the TAP: frames injected there come from clients routed via the interface, which
    ///   strict reverse-path filtering would drop; the effective value is the maximum of `all` and the device, so 2
    ///   is loose whatever `all` says.
    public var wantedSysctls: [(Sysctl, String)] {
        guard vip.isIPv4 else { return [] }
        return [
            (.ipv4(interface, "arp_ignore"), "1"),
            (.ipv4(interface, "arp_announce"), "2"),
            (.ipv4(tapName, "rp_filter"), "2"),
        ]
    }

    /// The settings the TAP must have.
    var wantedTapSettings: LinkSettings { LinkSettings(mac: virtualMAC, noARP: true, up: true) }

    /// Checks what needs no kernel: the TAP name and the VIP.
    public func validate() throws(SetupError) {
        let name = tapName.utf8
        guard (1...15).contains(name.count), !tapName.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace })
        else { throw .tapNameInvalid(tapName) }
        guard vip.prefixLength == vip.bytes.count * 8, vip.isUsableUnicast else { throw .vipNotAHost(vip) }
    }

    /// The steps that bring the kernel from its current state to this setup (none when it is there already).
    ///
    /// - Throws: `SetupError` when the interface is missing, the VIP is the interface's own address or is on another
    ///   interface, or the TAP name belongs to a device of another kind.
    public func planSetup(using socket: NetlinkSocket) throws(SetupError) -> Plan {
        try validate()
        let tap = try checkLinks(using: socket)
        var steps: [PlanStep] = []
        if let tap {
            let current = wantedTapSettings.current(of: tap)
            if current != wantedTapSettings {
                let differing = LinkSettings(
                    mac: current.mac == virtualMAC ? nil : virtualMAC,
                    noARP: current.noARP == true ? nil : true,
                    up: current.up == true ? nil : true)
                steps.append(.changeLink(name: tapName, to: differing, from: differing.current(of: tap)))
            }
        } else {
            steps.append(.createTap(name: tapName))
            steps.append(
                .changeLink(
                    name: tapName, to: wantedTapSettings,
                    from: LinkSettings(
                        mac: nil, noARP: false,
                        up: false)))
        }
        for (sysctl, value) in wantedSysctls {
            let current = try currentValue(of: sysctl, tapExists: tap != nil)
            if current != value { steps.append(.setSysctl(sysctl, to: value, from: current)) }
        }
        let onTap =
            try tap.map { link throws(SetupError) in
                try kernel { () throws(NetlinkError) in
                    try socket.addresses(onLink: link.index)
                }
            } ?? []
        // The TAP is vipfarm's alone: an address other than the VIP is left from an earlier VIP.
        for stale in onTap where stale != vip && !stale.isLinkLocal {
            steps.append(.removeAddress(link: tapName, prefix: stale))
        }
        // Before the VIP: the kernel must never take the VIP's frames on the interface, not even for a moment.
        if relay == true, try !kernel({ () throws(NetlinkError) in try ingressDrop.isInstalled() }) {
            steps.append(.addIngressDrop(ingressDrop))
        }
        if !onTap.contains(vip) { steps.append(.addAddress(link: tapName, prefix: vip)) }
        return Plan(steps)
    }

    /// The steps that undo a setup: the VIP, then the sysctls (to the values `state` saved), then the TAP (when
    /// setup created it; otherwise its saved settings). Without a saved state, the VIP and a TAP device of this name
    /// are removed, and `warnings` says what could not be restored.
    public func planTeardown(using socket: NetlinkSocket, state: SetupState?) throws(SetupError)
        -> (plan: Plan, warnings: [String])
    {
        try validate()
        var steps: [PlanStep] = []
        var warnings: [String] = []
        let tap = try kernel { () throws(NetlinkError) in try socket.link(named: tapName) }
        if let tap {
            let onTap = try kernel { () throws(NetlinkError) in try socket.addresses(onLink: tap.index) }
            if onTap.contains(vip) { steps.append(.removeAddress(link: tapName, prefix: vip)) }
        }
        if try kernel({ () throws(NetlinkError) in try ingressDrop.isInstalled() }) {
            steps.append(.removeIngressDrop(ingressDrop))
        }
        let removesTap = tap != nil && (state?.createdTap ?? (tap?.kind == "tun"))
        if let state {
            // The TAP's own sysctls go with it when it is removed.
            for (sysctl, original) in state.originalSysctls.sorted(by: { $0.key < $1.key })
            where !(sysctl.name.contains(".\(tapName).") && (removesTap || tap == nil)) {
                let current = try currentValue(of: sysctl, tapExists: true)
                if current != original { steps.append(.setSysctl(sysctl, to: original, from: current)) }
            }
        } else {
            warnings.append(
                "no saved setup state for \(tapName): the sysctls on \(interface) stay as they are "
                    + "(arp_ignore, arp_announce); set them back by hand if needed")
        }
        if let tap {
            if removesTap {
                steps.append(.removeTap(name: tapName))
            } else if let original = state?.originalTapSettings {
                steps.append(.changeLink(name: tapName, to: original, from: original.current(of: tap)))
            }
        }
        return (Plan(steps), warnings)
    }

    // MARK: - Kernel state

    /// The TAP, if it exists, after checking that the interface, the VIP and the names make sense.
    private func checkLinks(using socket: NetlinkSocket) throws(SetupError) -> Link? {
        let links = try kernel { () throws(NetlinkError) in try socket.links() }
        guard let interfaceLink = links.first(where: { $0.name == interface }), interface != tapName else {
            throw .unknownInterface(interface)
        }
        let tap = links.first { $0.name == tapName }
        if let tap, tap.kind != "tun" { throw .tapNameTaken(tapName, kind: tap.kind ?? "physical") }
        let addresses = try kernel { () throws(NetlinkError) in try socket.addresses() }
        for address in addresses where address.prefix.bytes == vip.bytes {
            if address.linkIndex == interfaceLink.index { throw .vipIsInterfaceAddress(vip, interface: interface) }
            if address.linkIndex != tap?.index {
                let holder = links.first { $0.index == address.linkIndex }?.name ?? "interface \(address.linkIndex)"
                throw .vipOnAnotherInterface(vip, interface: holder)
            }
        }
        return tap
    }

    /// A sysctl's value; for a TAP that does not exist yet, the value a new device gets (`conf.default`).
    private func currentValue(of sysctl: Sysctl, tapExists: Bool) throws(SetupError) -> String {
        let prefix = "net.ipv4.conf.\(tapName)."
        let source =
            !tapExists && sysctl.name.hasPrefix(prefix)
            ? Sysctl("net.ipv4.conf.default." + sysctl.name.dropFirst(prefix.count)) : sysctl
        return try kernel { () throws(NetlinkError) in try source.read() }
    }

    private func kernel<T>(_ body: () throws(NetlinkError) -> T) throws(SetupError) -> T {
        do { return try body() } catch { throw .kernel(error) }
    }
}

extension IPPrefix {
    /// fe80::/10, which the kernel adds to an interface by itself.
    var isLinkLocal: Bool { !isIPv4 && bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 }

    /// Not unspecified, loopback or multicast: an address clients can send to.
    public var isUsableUnicast: Bool {
        if isIPv4 { return bytes != [0, 0, 0, 0] && bytes[0] != 127 && bytes[0] < 224 }
        let loopback: [UInt8] = Array(repeating: 0, count: 15) + [1]
        return bytes != [UInt8](repeating: 0, count: 16) && bytes != loopback && bytes[0] != 0xFF
    }
}
