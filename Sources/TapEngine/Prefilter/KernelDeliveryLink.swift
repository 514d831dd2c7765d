import CBPF
import Glibc

/// The kernel delivery classifier attached to the interface's ingress through a tcx link (Linux 6.6): the program
/// runs while this object lives, and the kernel detaches it when the link's descriptor closes, also when the process
/// dies, so a node that is gone never leaves a program redirecting its clients' frames.
final class KernelDeliveryLink {
    private let link: Int32
    let interfaceIndex: Int32

    /// Attaches `program` (a loaded classifier) after the programs already there.
    ///
    /// - Throws: `SystemCallError`: no tcx in this kernel (`EINVAL`), no CAP_NET_ADMIN or CAP_BPF (`EPERM`).
    init(program: Int32, interfaceIndex: Int32, interface: String) throws(SystemCallError) {
        link = vipfarm_bpf_tcx_ingress_attach(program, interfaceIndex)
        guard link >= 0 else {
            throw SystemCallError(
                "bpf(BPF_LINK_CREATE)",
                "attach the kernel delivery classifier to \(interface)'s ingress (tcx, Linux 6.6)")
        }
        self.interfaceIndex = interfaceIndex
    }

    /// Runs `program` in place of the one attached, atomically: every frame meets one or the other.
    func replace(with program: Int32) throws(SystemCallError) {
        guard vipfarm_bpf_link_update(link, program) == 0 else {
            throw SystemCallError("bpf(BPF_LINK_UPDATE)", "replace the kernel delivery classifier")
        }
    }

    deinit {
        close(link)
    }
}
