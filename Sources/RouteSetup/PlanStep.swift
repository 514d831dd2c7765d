/// What a link should look like after a step; `nil` fields are left alone.
public struct LinkSettings: Codable, Equatable, Sendable {
    public var mac: HardwareAddress?
    public var noARP: Bool?
    public var up: Bool?

    public init(mac: HardwareAddress? = nil, noARP: Bool? = nil, up: Bool? = nil) {
        self.mac = mac
        self.noARP = noARP
        self.up = up
    }

    /// The settings of `link` for the fields set in `self`.
    func current(of link: Link) -> LinkSettings {
        LinkSettings(
            mac: mac == nil ? nil : link.mac, noARP: noARP == nil ? nil : link.isNoARP,
            up: up == nil ? nil : link.isUp)
    }

    var description: String {
        [mac.map { "mac \($0)" }, noARP.map { "arp \($0 ? "off" : "on")" }, up.map { $0 ? "up" : "down" }]
            .compactMap { $0 }.joined(separator: ", ")
    }
}

/// One change to the kernel, with its inverse. Steps are data, so a plan can be printed (`--dry-run`), applied,
/// rolled back, and saved.
public enum PlanStep: Codable, Equatable, Sendable, CustomStringConvertible {
    case createTap(name: String)
    case removeTap(name: String)
    case changeLink(name: String, to: LinkSettings, from: LinkSettings)
    case addAddress(link: String, prefix: IPPrefix)
    case removeAddress(link: String, prefix: IPPrefix)
    case setSysctl(Sysctl, to: String, from: String)
    case addIngressDrop(IngressDrop)
    case removeIngressDrop(IngressDrop)

    /// The step that undoes this one.
    public var inverse: PlanStep {
        switch self {
        case .createTap(let name): .removeTap(name: name)
        case .removeTap(let name): .createTap(name: name)
        case .changeLink(let name, let to, let from): .changeLink(name: name, to: from, from: to)
        case .addAddress(let link, let prefix): .removeAddress(link: link, prefix: prefix)
        case .removeAddress(let link, let prefix): .addAddress(link: link, prefix: prefix)
        case .setSysctl(let sysctl, let to, let from): .setSysctl(sysctl, to: from, from: to)
        case .addIngressDrop(let drop): .removeIngressDrop(drop)
        case .removeIngressDrop(let drop): .addIngressDrop(drop)
        }
    }

    /// Makes the change. The socket must belong to the namespace the plan was made in.
    public func apply(using socket: NetlinkSocket) throws(NetlinkError) {
        switch self {
        case .createTap(let name):
            try TapDevice.createPersistent(named: name)
        case .removeTap(let name):
            try TapDevice.removePersistent(named: name)
        case .changeLink(let name, let to, _):
            try socket.changeLink(named: name, LinkChange(up: to.up, noARP: to.noARP, mac: to.mac))
        case .addAddress(let link, let prefix):
            try socket.addAddress(prefix, toLink: try socket.requireLink(named: link).index)
        case .removeAddress(let link, let prefix):
            try socket.removeAddress(prefix, fromLink: try socket.requireLink(named: link).index)
        case .setSysctl(let sysctl, let value, _):
            try sysctl.write(value)
        case .addIngressDrop(let drop):
            try drop.install()
        case .removeIngressDrop(let drop):
            try drop.remove()
        }
    }

    public var description: String {
        switch self {
        case .createTap(let name): "create TAP device \(name)"
        case .removeTap(let name): "remove TAP device \(name)"
        case .changeLink(let name, let to, let from): "set \(name): \(to.description) (was \(from.description))"
        case .addAddress(let link, let prefix): "add \(prefix) to \(link)"
        case .removeAddress(let link, let prefix): "remove \(prefix) from \(link)"
        case .setSysctl(let sysctl, let to, let from): "set \(sysctl) = \(to) (was \(from))"
        case .addIngressDrop(let drop): "drop packets for \(drop.vip.address) at \(drop.interface)'s ingress (nftables table \(drop.table))"
        case .removeIngressDrop(let drop): "remove nftables table \(drop.table)"
        }
    }
}
