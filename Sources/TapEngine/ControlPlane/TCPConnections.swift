import CKernel
import Glibc
import Hashing

/// The kernel's TCP connections of one local address, read through sock_diag (`NETLINK_SOCK_DIAG`, the interface of
/// `ss`): what a draining node still serves. One walk of the host's whole TCP socket table, so it belongs on a thread
/// that may take a few milliseconds, not on the heartbeat loop.
public enum TCPConnections {
    /// The TCP states of a connection that may still carry a client's data: established, being opened (SYN_RECV), or
    /// being closed by one side while the other may still send (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING). Not
    /// LISTEN, and not TIME_WAIT (nothing but a last ACK can come).
    static let openStates: UInt32 = [1, 3, 4, 5, 8, 9, 11].reduce(0) { $0 | 1 << $1 }

    /// A connection of the local address: its remote end (the client) and the local port (the service).
    public struct Connection: Equatable, Sendable {
        public var client: IPAddress
        public var clientPort: UInt16
        public var serverPort: UInt16

        /// The flow the engine's tables know the connection by.
        public var flowKey: FlowKey {
            FlowKey(client: client, clientPort: clientPort, serverPort: serverPort, proto: .tcp)
        }
    }

    /// How many TCP connections have `address` as their local address (IPv4 ones through an IPv6 socket too).
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket(AF_NETLINK, ..., NETLINK_SOCK_DIAG)`,
    ///   `send` and `recv`.
    public static func count(localAddress address: IPAddress) throws(SystemCallError) -> Int {
        try list(localAddress: address).count
    }

    /// The TCP connections that have `address` as their local address: what a node that starts again still serves
    /// (the kernel kept them while lbnode was away).
    ///
    /// - Throws: `SystemCallError`, as `count`.
    public static func list(localAddress address: IPAddress) throws(SystemCallError) -> [Connection] {
        let mapped = address.isIPv4 ? [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + address.bytes : address.bytes
        var connections: [Connection] = []
        let filter = localAddressCondition(address)
        let take = { (message: inet_diag_msg) in
            let family = Int32(message.idiag_family)
            let id = message.id
            let wanted = family == AF_INET ? address.bytes : mapped
            guard withUnsafeBytes(of: id.idiag_src, { $0.starts(with: wanted) }) else { return }
            // An IPv4 client of an IPv6 socket comes IPv4-mapped, which is how IPAddress holds IPv4 anyway.
            let remote = withUnsafeBytes(of: id.idiag_dst) { Array($0.prefix(family == AF_INET ? 4 : 16)) }
            connections.append(
                Connection(
                    client: IPAddress(bytes: remote)!, clientPort: UInt16(bigEndian: id.idiag_dport),
                    serverPort: UInt16(bigEndian: id.idiag_sport)))
        }
        guard address.isIPv4 else {
            try dump(.family(UInt8(AF_INET6)), filter: filter, take)
            return connections
        }
        // Both families in one walk of the kernel's socket table, which costs milliseconds however few sockets it
        // holds (it is the host's, shared by every namespace); a kernel that refuses the old request gets one per
        // family.
        do {
            try dump(.bothFamilies, filter: filter, take)
        } catch {
            connections.removeAll()
            try dump(.family(UInt8(AF_INET)), filter: filter, take)
            try dump(.family(UInt8(AF_INET6)), filter: filter, take)
        }
        return connections
    }

    /// What a dump asks for: one family (`SOCK_DIAG_BY_FAMILY`, `inet_diag_req_v2`), or IPv4 and IPv6 sockets in
    /// one walk (`TCPDIAG_GETSOCK`, the original request, `inet_diag_req`, which the kernel answers for both).
    enum Request {
        case family(UInt8)
        case bothFamilies
    }

    /// Dumps the TCP sockets in `openStates` that the bytecode `filter` passes, handing each one's message to `body`.
    /// The kernel filters by address (`localAddressCondition`, as `ss src ADDRESS` sends): it still walks every socket
    /// of the host, but writes out only the VIP's, so a server's other connections (its database pools, its back
    /// ends) cost the walk and no more.
    ///
    /// - Throws: `SystemCallError`, also when the kernel answers the request with an error.
    static func dump(
        _ kind: Request, filter: [UInt8], _ body: (inet_diag_msg) -> Void
    ) throws(SystemCallError) {
        let socket = try Socket(family: AF_NETLINK, type: SOCK_DGRAM, protocol: NETLINK_SOCK_DIAG)
        try socket.setTimeouts(milliseconds: 2000)  // a dump that never ends fails instead of hanging its thread
        let queryEnd: Int
        var request: [UInt8]
        var header = nlmsghdr()
        header.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
        switch kind {
        case .family(let family):
            queryEnd = MemoryLayout<nlmsghdr>.size + MemoryLayout<inet_diag_req_v2>.size
            header.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
            var query = inet_diag_req_v2()
            query.sdiag_family = family
            query.sdiag_protocol = UInt8(IPPROTO_TCP)
            query.idiag_states = openStates
            request = withUnsafeBytes(of: header) { Array($0) } + withUnsafeBytes(of: query) { Array($0) }
        case .bothFamilies:
            queryEnd = MemoryLayout<nlmsghdr>.size + MemoryLayout<inet_diag_req>.size
            header.nlmsg_type = UInt16(TCPDIAG_GETSOCK)
            var query = inet_diag_req()
            query.idiag_states = openStates
            request = withUnsafeBytes(of: header) { Array($0) } + withUnsafeBytes(of: query) { Array($0) }
        }
        // The length, now that the attribute that carries the bytecode follows (its length and type, in host order).
        request.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(queryEnd + 4 + filter.count), as: UInt32.self) }
        let attribute = (UInt16(4 + filter.count), UInt16(INET_DIAG_REQ_BYTECODE))
        request += withUnsafeBytes(of: attribute) { Array($0) } + filter
        try SystemCall.retrying("send", "ask the kernel for its TCP sockets") {
            request.withUnsafeBytes { Glibc.send(socket.descriptor, $0.baseAddress, $0.count, 0) }
        }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let messageOffset = MemoryLayout<nlmsghdr>.size
        while true {
            let received = try SystemCall.retrying("recv", "read the kernel's TCP sockets") {
                buffer.withUnsafeMutableBytes { recv(socket.descriptor, $0.baseAddress, $0.count, 0) }
            }
            var offset = 0
            var refused: Int32 = 0
            let done: Bool = buffer.withUnsafeBytes { bytes in
                while offset + MemoryLayout<nlmsghdr>.size <= received {
                    let header = bytes.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
                    let length = Int(header.nlmsg_len)
                    guard length >= MemoryLayout<nlmsghdr>.size, offset + length <= received else { return true }
                    switch Int32(header.nlmsg_type) {
                    case NLMSG_DONE: return true
                    case NLMSG_ERROR:
                        if length >= messageOffset + 4 {
                            refused = -bytes.loadUnaligned(fromByteOffset: offset + messageOffset, as: Int32.self)
                        }
                        return true
                    default:
                        if length >= messageOffset + MemoryLayout<inet_diag_msg>.size {
                            body(bytes.loadUnaligned(fromByteOffset: offset + messageOffset, as: inet_diag_msg.self))
                        }
                    }
                    offset += (length + 3) & ~3  // NLMSG_ALIGN
                }
                return received == 0
            }
            if refused != 0 {
                throw SystemCallError("sock_diag", "dump the kernel's TCP sockets", errno: refused)
            }
            if done { return }
        }
    }

    /// The bytecode of one condition, "the local address is `address`" (`INET_DIAG_BC_S_COND`, any port): an op whose
    /// `yes` jumps to the end (a match) and whose `no` jumps past it (no match), then the host condition. An IPv4
    /// condition also matches an IPv6 socket's IPv4-mapped address.
    static func localAddressCondition(_ address: IPAddress) -> [UInt8] {
        let length = 4 + 8 + address.bytes.count
        let operation = (UInt8(INET_DIAG_BC_S_COND), UInt8(length), UInt16(length + 4))
        // family, prefix length, two bytes of padding, the port (-1: any)
        var condition: [UInt8] = [UInt8(address.isIPv4 ? AF_INET : AF_INET6), UInt8(8 * address.bytes.count), 0, 0]
        condition += withUnsafeBytes(of: Int32(-1)) { Array($0) }
        return withUnsafeBytes(of: operation) { Array($0) } + condition + address.bytes
    }
}
