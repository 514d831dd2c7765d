import CPcap
import Glibc

/// The engine's descriptor of the TAP device that holds the VIP: accepted frames are written into it unchanged and
/// the kernel delivers them to the application.
public final class TapWriter {
    public let name: String
    /// The TAP descriptor (batched writers submit on it).
    let fd: Int32

    /// Attaches to the TAP device `name` (created by `lbnode setup`; attaching creates it if it does not exist).
    ///
    /// - Throws: `SystemCallError`. The corresponding C calls are `open("/dev/net/tun")` and `ioctl(TUNSETIFF)`.
    public init(name: String) throws(SystemCallError) {
        self.name = name
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SystemCallError("open", "open /dev/net/tun for \(name)") }
        guard vipfarm_tap_attach(fd, name) >= 0 else {
            let error = SystemCallError("ioctl(TUNSETIFF)", "attach to TAP device \(name)")
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
    }

    /// Writes one frame; `false` if the kernel refused it (counted by the caller, never thrown on the fast path).
    /// The corresponding C function is `write`.
    @inline(__always)
    func write(_ frame: UnsafeRawBufferPointer) -> Bool {
        Glibc.write(fd, frame.baseAddress, frame.count) == frame.count
    }
}
