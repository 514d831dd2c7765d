/// Why `lbnode setup` or `teardown` refused or failed: each says what to do.
public enum SetupError: Error, CustomStringConvertible {
    case unknownInterface(String)
    case tapNameInvalid(String)
    case tapNameTaken(String, kind: String)
    case vipNotAHost(IPPrefix)
    case vipIsInterfaceAddress(IPPrefix, interface: String)
    case vipOnAnotherInterface(IPPrefix, interface: String)
    case stateFile(String)
    case kernel(NetlinkError)
    case planFailed(Plan.Failure)

    public var description: String {
        switch self {
        case .unknownInterface(let name):
            "interface \(name) does not exist: give the NIC that faces the clients (`ip -br link` lists them)"
        case .tapNameInvalid(let name):
            "TAP name '\(name)' is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)"
        case .tapNameTaken(let name, let kind):
            "\(name) already exists and is a \(kind) device, not a TAP device: choose another name with --tap"
        case .vipNotAHost(let prefix):
            "VIP \(prefix) is not a single unicast address: give one address, e.g. 198.18.0.100 or 2001:db8::100"
        case .vipIsInterfaceAddress(let vip, let interface):
            "VIP \(vip.address) is \(interface)'s own address: "
                + "the VIP must be an address that no server uses as its own"
        case .vipOnAnotherInterface(let vip, let interface):
            "VIP \(vip.address) is already on \(interface): remove it there first "
                + "(ip addr del \(vip) dev \(interface)) or use that interface"
        case .stateFile(let message):
            message
        case .kernel(let error):
            error.description
        case .planFailed(let failure):
            failure.description
        }
    }
}
