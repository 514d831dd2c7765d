import CKernel
import Glibc

/// Persistent TAP devices (IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE), created so that `lbnode setup` can prepare one and
/// `lbnode run` attach to it later, a queue per engine thread.
public enum TapDevice {
    /// Creates the persistent TAP device `name` in the calling thread's namespace. The corresponding C calls are
    /// `open("/dev/net/tun")` and the `TUNSETIFF` and `TUNSETPERSIST` ioctls.
    public static func createPersistent(named name: String) throws(NetlinkError) {
        try withTap(named: name, operation: "create TAP device \(name)") { fd throws(NetlinkError) in
            guard vipfarm_tap_set_persist(fd, 1) >= 0 else {
                throw NetlinkError(operation: "make TAP device \(name) persistent", errno: errno)
            }
        }
    }

    /// Removes the persistent TAP device `name` (clears its persistence; the kernel deletes it when the last
    /// descriptor closes).
    public static func removePersistent(named name: String) throws(NetlinkError) {
        try withTap(named: name, operation: "remove TAP device \(name)") { fd throws(NetlinkError) in
            guard vipfarm_tap_set_persist(fd, 0) >= 0 else {
                throw NetlinkError(operation: "remove TAP device \(name)", errno: errno)
            }
        }
    }

    private static func withTap(
        named name: String, operation: String, _ body: (Int32) throws(NetlinkError) -> Void
    ) throws(NetlinkError) {
        guard name.utf8.count < IFNAMSIZ, !name.isEmpty else {
            throw NetlinkError(operation: operation, errno: EINVAL)
        }
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError(operation: "\(operation): open /dev/net/tun", errno: errno) }
        defer { close(fd) }
        // Multi-queue, so that each engine thread writes into a queue of its own; a device made without (by an
        // older lbnode, or by hand) refuses that, and is taken as it is.
        guard vipfarm_tap_attach(fd, name, 0, 1) >= 0 || vipfarm_tap_attach(fd, name, 0, 0) >= 0 else {
            throw NetlinkError(operation: operation, errno: errno)
        }
        try body(fd)
    }
}
