import CKernel
import Glibc

/// An interface's index and flags, read with two cheap calls (`if_nametoindex`, `SIOCGIFFLAGS`): cheap enough to look
/// at every heartbeat interval, to notice a deleted, re-created or downed interface within the failover time.
public struct InterfaceState: Equatable, Sendable {
    public let index: Int32
    /// Administratively up (`IFF_UP`).
    public let up: Bool
    /// Up with a carrier (`IFF_RUNNING`).
    public let running: Bool

    /// The interface named `name` now, or nil if there is none. The corresponding C functions are `if_nametoindex`
    /// and `ioctl(SIOCGIFFLAGS)`.
    public static func of(_ name: String) -> InterfaceState? {
        let index = Int32(if_nametoindex(name))
        guard index > 0 else { return nil }
        let flags = vipfarm_interface_flags(name)
        guard flags >= 0 else { return nil }
        return InterfaceState(
            index: index, up: flags & Int32(IFF_UP) != 0, running: flags & Int32(IFF_RUNNING) != 0)
    }
}
