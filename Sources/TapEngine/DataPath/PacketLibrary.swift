import CPcap

/// The packet capture library under the engine's receive path.
public enum PacketLibrary {
    /// The libpcap version string, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
    ///
    /// The corresponding C function is `pcap_lib_version`.
    public static var version: String { String(cString: pcap_lib_version()) }
}
