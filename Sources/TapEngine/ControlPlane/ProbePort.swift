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
    ///   With a `tag` (one to four bytes), the kernel drops every frame whose payload does not start with it.
    public init(interface: String, etherType: UInt16, receiving macs: [UInt64] = [], tag: [UInt8] = [])
        throws(SystemCallError)
    {
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
        if !tag.isEmpty { try attachTagFilter(tag) }
        for mac in macs {
            var bytes = PacketBuilder.macBytes(mac)
            let multicast = bytes[0] & 1 == 1
            try SystemCall.retrying("setsockopt(PACKET_ADD_MEMBERSHIP)", "receive frames for a probe MAC") {
                vipfarm_add_membership(socket.descriptor, index, multicast ? 1 : 0, &bytes)
            }
        }
    }

    /// A classic BPF program: load the payload's first four bytes (a shorter frame fails the load: dropped), keep the
    /// tag's, compare.
    private func attachTagFilter(_ tag: [UInt8]) throws(SystemCallError) {
        precondition((1...4).contains(tag.count), "a probe tag has one to four bytes")
        let value = tag.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (24 - 8 * UInt32($1.offset)) }
        let mask = UInt32.max << (32 - 8 * UInt32(tag.count))
        var program = [
            sock_filter(code: 0x20, jt: 0, jf: 0, k: 14),  // BPF_LD | BPF_W | BPF_ABS: the payload's first word
            sock_filter(code: 0x54, jt: 0, jf: 0, k: mask),  // BPF_ALU | BPF_AND | BPF_K
            sock_filter(code: 0x15, jt: 0, jf: 1, k: value),  // BPF_JMP | BPF_JEQ | BPF_K
            sock_filter(code: 0x06, jt: 0, jf: 0, k: 0xFFFF),  // BPF_RET: take it
            sock_filter(code: 0x06, jt: 0, jf: 0, k: 0),  // BPF_RET: drop it
        ]
        try program.withUnsafeMutableBufferPointer { instructions throws(SystemCallError) in
            try socket.setOption(
                SOL_SOCKET, SO_ATTACH_FILTER,
                bytes: sock_fprog(len: UInt16(instructions.count), filter: instructions.baseAddress),
                "filter the probe frames by their tag")
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
