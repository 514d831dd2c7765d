import CNetlink
import Glibc

/// The one owner of a libnl `nl_addr`, built from an `IPPrefix` or a `HardwareAddress`.
final class NetlinkAddress {
    let handle: OpaquePointer

    init(_ prefix: IPPrefix) {
        handle = prefix.bytes.withUnsafeBytes { nl_addr_build(prefix.family, $0.baseAddress, $0.count) }
        nl_addr_set_prefixlen(handle, Int32(prefix.prefixLength))
    }

    init(_ mac: HardwareAddress) {
        handle = mac.bytes.withUnsafeBytes { nl_addr_build(AF_LLC, $0.baseAddress, $0.count) }
    }

    deinit {
        nl_addr_put(handle)
    }

    /// The bytes of a borrowed `nl_addr` (owned by the object it came from).
    static func bytes(of address: OpaquePointer?) -> [UInt8]? {
        guard let address, let binary = nl_addr_get_binary_addr(address) else { return nil }
        let length = Int(nl_addr_get_len(address))
        return Array(UnsafeRawBufferPointer(start: binary, count: length))
    }
}
