import CKernel
import Glibc

/// An interface's index and flags, read with two ioctls on a socket kept open (`InterfaceState.Reader`): cheap enough
/// to look at every heartbeat interval, to notice a deleted, re-created or downed interface within the failover time.
public struct InterfaceState: Equatable, Sendable {
    public let index: Int32
    /// Administratively up (`IFF_UP`).
    public let up: Bool
    /// Up with a carrier (`IFF_RUNNING`).
    public let running: Bool

    /// Looks at interfaces of the network namespace it was made in, on one datagram socket it keeps: a look costs
    /// two ioctls (`SIOCGIFINDEX`, `SIOCGIFFLAGS`) and opens nothing, as `if_nametoindex` would at every call.
    public final class Reader {
        private let socket: Int32

        public init() throws(SystemCallError) {
            socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { throw SystemCallError("socket", "open a socket to look at interfaces") }
        }

        deinit { close(socket) }

        /// The interface named `name` now, or nil if there is none.
        public func state(of name: String) -> InterfaceState? {
            var index: Int32 = 0
            var flags: Int32 = 0
            guard vipfarm_interface_state(socket, name, &index, &flags) == 0 else { return nil }
            return InterfaceState(
                index: index, up: flags & Int32(IFF_UP) != 0, running: flags & Int32(IFF_RUNNING) != 0)
        }
    }
}
