import Glibc
import Hashing

/// `sockaddr_in` or `sockaddr_in6` for an address and port, lent to a C call; and back.
public enum SocketAddress {
    /// The address in `storage`, a `sockaddr_in` or `sockaddr_in6` a call filled in.
    public static func address(of storage: sockaddr_in6) -> IPAddress {
        if storage.sin6_family == sa_family_t(AF_INET) {
            let v4 = withUnsafeBytes(of: storage) { raw in
                raw.load(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: UInt32.self)
            }
            return IPAddress(ipv4: UInt32(bigEndian: v4))
        }
        return IPAddress(bytes: withUnsafeBytes(of: storage.sin6_addr) { Array($0) })!
    }

    public static func with<T>(_ address: IPAddress, port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T)
        -> T
    {
        if let v4 = address.ipv4Value {
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            socketAddress.sin_addr.s_addr = v4.bigEndian
            return withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        var socketAddress = sockaddr_in6()
        socketAddress.sin6_family = sa_family_t(AF_INET6)
        socketAddress.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: address.bytes) }
        return withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    }
}
