import CNetlink
import Glibc

/// NIC offloads that the virtual testbed must turn off to behave like a wire.
public enum LinkOffloads {
    /// Turns transmit checksum offload on or off (`ethtool -K <name> tx off`).
    ///
    /// A veth with it on hands frames to the peer namespace with their TCP/UDP checksums never computed (the kernel
    /// trusts its own skb flag); a packet socket that reads them there and writes them into a TAP device then
    /// delivers a bad checksum. Real NICs receive finished checksums, so the testbed turns it off on every host.
    /// The corresponding C call is `ioctl(SIOCETHTOOL, ETHTOOL_STXCSUM)`.
    public static func setTransmitChecksum(_ name: String, enabled: Bool) throws(NetlinkError) {
        guard vipfarm_set_tx_checksum(name, enabled ? 1 : 0) == 0 else {
            throw NetlinkError(
                operation: "turn transmit checksum offload \(enabled ? "on" : "off") on \(name)",
                errno: errno)
        }
    }
}
