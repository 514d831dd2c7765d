import CKernel
import Glibc

/// A packet socket for `lbnode probe`: sends frames of one EtherType as they are built (any source MAC: the probe
/// tests whether the switch lets them through) and receives that EtherType, the frames sent to `macs` among them
/// (added to the NIC's address list, as the engine adds the virtual MAC).
public final class ProbePort {
    private let socket: Socket
    private let etherType: UInt16
    private var buffer = [UInt8](repeating: 0, count: 2048)

    /// One received frame.
    public struct Received {
        public let destination: UInt64
        public let source: UInt64
        /// What follows the Ethernet header.
        public let payload: ArraySlice<UInt8>
    }

    /// - Throws: `SystemCallError`. The corresponding C functions are `socket(AF_PACKET)`, `bind` and
    ///   `setsockopt(PACKET_ADD_MEMBERSHIP)`.
    public init(interface: String, etherType: UInt16, receiving macs: [UInt64] = []) throws(SystemCallError) {
        self.etherType = etherType
        socket = try Socket(family: AF_PACKET, type: SOCK_RAW, protocol: Int32(etherType.bigEndian), nonBlocking: true)
        let index = Int32(bitPattern: if_nametoindex(interface))
        guard index != 0 else { throw SystemCallError("if_nametoindex", "find \(interface)", errno: ENODEV) }
        var link = sockaddr_ll()
        link.sll_family = UInt16(AF_PACKET)
        link.sll_protocol = etherType.bigEndian
        link.sll_ifindex = index
        try SystemCall.retrying("bind", "bind a packet socket to \(interface)") {
            withUnsafePointer(to: &link) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                }
            }
        }
        for mac in macs {
            var bytes = PacketBuilder.macBytes(mac)
            let multicast = bytes[0] & 1 == 1
            try SystemCall.retrying("setsockopt(PACKET_ADD_MEMBERSHIP)", "receive frames for a probe MAC") {
                vipfarm_add_membership(socket.descriptor, index, multicast ? 1 : 0, &bytes)
            }
        }
    }

    /// Sends `payload` from `source` to `destination`.
    public func send(to destination: UInt64, from source: UInt64, payload: [UInt8]) throws(SystemCallError) {
        let frame = PacketBuilder.ethernet(destination: destination, source: source, etherType: etherType) + payload
        let sent = try SystemCall.retrying("send", "send a \(frame.count)-byte probe frame") {
            Glibc.send(socket.descriptor, frame, frame.count, Int32(MSG_DONTWAIT))
        }
        guard sent == frame.count else { throw SystemCallError("send", "send a probe frame", errno: EMSGSIZE) }
    }

    /// The next frame, waiting up to `timeoutMilliseconds`; nil if none came.
    public func receive(timeoutMilliseconds: Int32) -> Received? {
        guard (try? socket.wait(for: Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds)) == true else { return nil }
        let received = buffer.withUnsafeMutableBytes { try? socket.receive(into: $0) }
        guard let count = received ?? nil, count >= 14 else { return nil }
        func mac(_ offset: Int) -> UInt64 { buffer[offset..<offset + 6].reduce(0) { $0 << 8 | UInt64($1) } }
        return Received(destination: mac(0), source: mac(6), payload: buffer[14..<count])
    }
}
