import Hashing
import RouteSetup
import TapEngine

// RouteSetup's address types and the engine's (`IPAddress`, a MAC in a `UInt64`) meet here, converted once: the
// module layout keeps RouteSetup and Hashing apart, so a host says what it is in both.
extension VirtualNetwork.Host {
    /// The host's IPv4 address, as sockets and frames take it.
    public var ip: IPAddress { IPAddress(bytes: address.bytes)! }
    /// The host's MAC in a `UInt64`, as frames and the engine take it.
    public var macValue: UInt64 { TapEngine.macValue(mac!.bytes) }
}
