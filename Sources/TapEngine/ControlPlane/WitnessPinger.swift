import CKernel
import Glibc
import Hashing

/// Pings one address (an ICMP or ICMPv6 echo over a raw socket, so no `ping` program is needed) and tells when the
/// latest answered request was sent: the witness by which a node that stops hearing its peers tells "they are gone"
/// from "I am cut off". Each request carries a fresh random token, and the pinger keeps when it sent it: an answer
/// proves the path worked after that time (however late it is read), a forged one needs the token of a request still
/// outstanding, and no answer can claim a time the pinger did not send at (one from the future, say).
public final class WitnessPinger {
    public let target: IPAddress
    private let socket: Socket
    private let identifier = UInt16.random(in: 1...UInt16.max)
    private var sequence: UInt16 = 0
    /// The requests not answered yet, by sequence: their token and when they were sent (the newest `outstandingLimit`).
    private var outstanding: [UInt16: (token: UInt64, sentAt: Int)] = [:]
    static let outstandingLimit = 64
    private var buffer = [UInt8](repeating: 0, count: 2048)

    /// Opens the raw socket (needs CAP_NET_RAW).
    ///
    /// - Throws: `SystemCallError`. The corresponding C function is `socket`.
    public init(target: IPAddress) throws(SystemCallError) {
        self.target = target
        socket = try Socket(
            family: target.isIPv4 ? AF_INET : AF_INET6, type: SOCK_RAW,
            protocol: Int32(target.isIPv4 ? IPPROTO_ICMP : IPPROTO_ICMPV6), nonBlocking: true)
        // Connected, the kernel hands this socket only what the witness sends: an ICMP flood to the VIP or to this
        // node from anywhere else never reaches it.
        try socket.connect(to: target, port: 0)
        // And of what the witness sends, only echo replies: the kernel drops its other ICMP types.
        if target.isIPv4 {
            try socket.setOption(
                Self.solRaw, Self.icmpFilter, bytes: ~UInt32(1 << 0), "let only echo replies reach the witness socket")
        } else {
            var blocked = [UInt32](repeating: .max, count: 8)  // struct icmp6_filter: a set bit blocks a type
            blocked[129 >> 5] &= ~(1 << (129 & 31))
            let filter = (blocked[0], blocked[1], blocked[2], blocked[3], blocked[4], blocked[5], blocked[6], blocked[7])
            try socket.setOption(
                Int32(IPPROTO_ICMPV6), Self.icmpFilter, bytes: filter, "let only echo replies reach the witness socket")
        }
    }

    /// `SOL_RAW`, and `ICMP_FILTER` (IPv4, a bit mask of the types to block) which is also `ICMP6_FILTER`'s number.
    private static let solRaw: Int32 = 255
    private static let icmpFilter: Int32 = 1

    /// The most datagrams one call of `answered` reads: one ping is outstanding at a time, so a few suffice, and a
    /// flood from the witness's address must not hold the caller (the heartbeat loop).
    static let datagramsPerCall = 64

    /// Sends one echo request stamped `now` (any monotonic count; a full socket queue only skips it).
    public func ping(now: Int) {
        sequence &+= 1
        let token = UInt64.random(in: 0...UInt64.max)
        outstanding[sequence] = (token, now)
        outstanding[sequence &- UInt16(Self.outstandingLimit)] = nil
        var message: [UInt8] = [target.isIPv4 ? 8 : 128, 0, 0, 0]  // echo request, code 0, checksum
        message += [UInt8(identifier >> 8), UInt8(identifier & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF)]
        withUnsafeBytes(of: token.bigEndian) { message += $0 }
        withUnsafeBytes(of: Int64(now).bigEndian) { message += $0 }
        if target.isIPv4 {  // the kernel sums ICMPv6 itself
            let sum = PacketBuilder.internetChecksum(message)
            message[2] = UInt8(sum >> 8)
            message[3] = UInt8(sum & 0xFF)
        }
        _ = SocketAddress.with(target, port: 0) { address, length in
            try? SystemCall.unlessWouldBlock("sendto", "ping the witness \(target)") {
                sendto(socket.descriptor, message, message.count, 0, address, length)
            }
        }
    }

    /// Takes every datagram waiting without blocking; the send time of the latest request answered among them, or nil.
    public func answered() -> Int? {
        var answered: Int?
        for _ in 0..<Self.datagramsPerCall {
            var source = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let received = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &source) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                        try? SystemCall.unlessWouldBlock("recvfrom", "read the witness's answers") {
                            recvfrom(socket.descriptor, bytes.baseAddress, bytes.count, 0, address, &length)
                        }
                    }
                }
            }
            guard let count = received ?? nil else { return answered }
            if let sent = sendTime(count: count, from: source) { answered = max(answered ?? sent, sent) }
        }
        return answered
    }

    /// When the request this echo reply answers was sent, if it answers an outstanding one of this pinger's from the
    /// target (it is then answered: a replay of the reply counts no more).
    private func sendTime(count: Int, from source: sockaddr_storage) -> Int? {
        guard let (sequence, token) = reply(count: count, from: source), let request = outstanding[sequence],
            request.token == token
        else { return nil }
        outstanding[sequence] = nil
        return request.sentAt
    }

    /// The sequence and token of an echo reply to this pinger's requests from the target, or nil.
    private func reply(count: Int, from source: sockaddr_storage) -> (sequence: UInt16, token: UInt64)? {
        var message = buffer[0..<count]
        var source = source
        if target.isIPv4 {
            guard let first = message.first, first >> 4 == 4 else { return nil }
            message = message.dropFirst(Int(first & 0x0F) * 4)  // a raw IPv4 socket hands over the IP header too
            let sender = withUnsafeBytes(of: &source) { $0.load(fromByteOffset: 4, as: UInt32.self) }
            guard UInt32(bigEndian: sender) == target.ipv4Value else { return nil }
        } else {
            let sender = withUnsafeBytes(of: &source) { Array($0[8..<24]) }
            guard sender == target.bytes else { return nil }
        }
        let bytes = Array(message)
        func field(_ offset: Int, _ size: Int) -> UInt64 { bytes[offset..<offset + size].reduce(0) { $0 << 8 | UInt64($1) } }
        guard bytes.count >= 24, bytes[0] == (target.isIPv4 ? 0 : 129), field(4, 2) == identifier else { return nil }
        return (UInt16(field(6, 2)), field(8, 8))
    }
}
