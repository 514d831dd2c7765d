import CKernel
import Glibc

/// A NIC's offloads, set as `ethtool -K` does: the testbed gives its hosts the shape of a real host (and, as an
/// explicit option, the shape of a wire).
///
/// Real hosts keep the kernel's defaults: a veth, as a VM's or a container's NIC, sends with transmit checksum
/// offload and TSO (frames reach the peer with partial checksums, up to 64 KB long), and a physical NIC or virtio-net
/// merges received segments (GRO). The corresponding C call is `ioctl(SIOCETHTOOL)` with the legacy get/set commands.
public enum LinkOffloads {
    /// One offload that `ethtool -K` names, with its legacy set command.
    public enum Feature: String, CaseIterable, Sendable {
        /// Transmit checksum offload (`tx`).
        case transmitChecksum = "tx"
        /// TCP segmentation offload (`tso`): the stack hands the device 64 KB segments.
        case segmentation = "tso"
        /// Generic receive offload (`gro`): received segments are merged before the stack (and packet sockets) see
        /// them.
        case receiveMerging = "gro"

        var setCommand: UInt32 {
            switch self {
            case .transmitChecksum: UInt32(ETHTOOL_STXCSUM)
            case .segmentation: UInt32(ETHTOOL_STSO)
            case .receiveMerging: UInt32(ETHTOOL_SGRO)
            }
        }
    }

    /// Turns `feature` on or off on the interface `name` in the calling thread's namespace.
    public static func set(_ feature: Feature, on name: String, enabled: Bool) throws(NetlinkError) {
        var value: UInt32 = enabled ? 1 : 0
        guard vipfarm_ethtool_value(name, feature.setCommand, &value) == 0 else {
            throw NetlinkError(
                operation: "turn \(feature.rawValue) \(enabled ? "on" : "off") on \(name) (ethtool -K)", errno: errno)
        }
    }
}
