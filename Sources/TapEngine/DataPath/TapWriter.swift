import CKernel
import Glibc

/// The engine's descriptor of the TAP device that holds the VIP. Every frame written carries its offload header
/// (`IFF_VNET_HDR`), so a frame with a partial checksum, or 64 KB of merged segments, enters the server's stack as one
/// GSO packet, as from a NIC with those offloads: no checksum or segmentation is done in user space.
public final class TapWriter: FrameSink {
    public let name: String
    /// The TAP descriptor (batched writers submit on it).
    let fd: Int32
    /// The descriptor is one queue of a multi-queue device: each engine thread can attach a queue of its own. A
    /// device made without `IFF_MULTI_QUEUE` (by an older lbnode, or by hand) takes one descriptor, which the
    /// threads then share.
    public let isMultiQueue: Bool
    /// What the device takes (`TUNSETOFFLOAD`): checksum offload and TCP segments; UDP segments where the kernel
    /// knows them (Linux 6.2 and later).
    static let offloads = UInt32(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
    static let udpOffloads = UInt32(TUN_F_USO4 | TUN_F_USO6)

    /// Attaches to the TAP device `name` (created by `lbnode setup`; attaching creates it if it does not exist), as a
    /// queue of its own if the device has several.
    ///
    /// - Throws: `SystemCallError`. The corresponding C calls are `open("/dev/net/tun")` and the `TUNSETIFF`,
    ///   `TUNSETVNETHDRSZ` and `TUNSETOFFLOAD` ioctls.
    public init(name: String) throws(SystemCallError) {
        self.name = name
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SystemCallError("open", "open /dev/net/tun for \(name)") }
        var failure: SystemCallError?
        isMultiQueue = vipfarm_tap_attach(fd, name, 1, 1) == 0
        if !isMultiQueue && vipfarm_tap_attach(fd, name, 1, 0) < 0 {
            failure = SystemCallError("ioctl(TUNSETIFF)", "attach to TAP device \(name) with offload headers")
        } else if vipfarm_tap_set_header_size(fd, Int32(OffloadHeader.size)) < 0 {
            failure = SystemCallError("ioctl(TUNSETVNETHDRSZ)", "set the offload header size of \(name)")
        } else if vipfarm_tap_set_offload(fd, Self.offloads | Self.udpOffloads) < 0
            && vipfarm_tap_set_offload(fd, Self.offloads) < 0
        {
            failure = SystemCallError("ioctl(TUNSETOFFLOAD)", "enable checksum and segmentation offload on \(name)")
        }
        if let failure {
            close(fd)
            throw failure
        }
    }

    deinit {
        close(fd)
    }

    /// Writes one frame at once. The corresponding C function is `write`.
    @inline(__always)
    func queue(_ frame: UnsafeRawBufferPointer) -> (written: UInt32, failed: UInt32) {
        Glibc.write(fd, frame.baseAddress, frame.count) == frame.count ? (1, 0) : (0, 1)
    }

    func flush() -> (written: UInt32, failed: UInt32) { (0, 0) }
}
