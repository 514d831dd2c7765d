import CNetlink
import Glibc

/// A connected NETLINK_ROUTE socket: the one owner of a libnl `nl_sock`.
///
/// The socket belongs to the network namespace of the thread that created it, so create it inside
/// `NetworkNamespace.run` to work on a namespace.
///
/// - Warning: not thread-safe; use one socket per thread.
public final class NetlinkSocket {
    let handle: OpaquePointer

    /// Opens and connects the socket.
    ///
    /// - Throws: `NetlinkError` when libnl cannot allocate or connect it. The corresponding C functions are
    ///   `nl_socket_alloc` and `nl_connect`.
    public init() throws(NetlinkError) {
        guard let socket = nl_socket_alloc() else {
            throw NetlinkError(operation: "allocate a netlink socket", libnlCode: -NLE_NOMEM)
        }
        let result = nl_connect(socket, NETLINK_ROUTE)
        guard result >= 0 else {
            nl_socket_free(socket)
            throw NetlinkError(operation: "connect to the kernel's routing netlink", libnlCode: result)
        }
        handle = socket
    }

    deinit {
        nl_socket_free(handle)
    }

    /// Runs one libnl call that returns 0 or a negative `NLE_*` code; throws with `operation` on failure.
    @discardableResult
    func check(_ operation: @autoclosure () -> String, _ result: Int32) throws(NetlinkError) -> Int32 {
        guard result >= 0 else { throw NetlinkError(operation: operation(), libnlCode: result) }
        return result
    }
}
