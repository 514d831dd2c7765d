import CKernel
import Glibc
import Hashing

/// The UDP socket of the farm's heartbeats: sends with TTL 255, takes in the kernel only what `DatagramFilter` lets
/// through, holds a large queue, and is read in batches of up to 64 datagrams per system call.
///
/// Sends never block. A datagram to a peer whose neighbour entry is unresolved (its server is off, its cable cut)
/// waits in the kernel's neighbour queue and keeps its share of this socket's send memory until ARP gives up, about
/// 3 s later; with the default send buffer a dead peer's queue filled it, and a blocking `sendto` to a *live* peer
/// then waited ~0.5 s every ARP cycle, long enough for the peers to declare this node dead. So the send buffer is
/// forced well above what the neighbour queues of many dead peers can hold (`unres_qlen_bytes`, 208 KiB each by
/// default), and a send that would still wait is given up (`SendOutcome.queueFull`).
public final class HeartbeatSocket {
    let fd: Int32
    /// Room for the largest datagram the filter lets through.
    private let slotSize: Int
    private var buffers: [UInt8]
    private var lengths = [UInt32](repeating: 0, count: 64)
    private var sources = [sockaddr_in6](repeating: sockaddr_in6(), count: 64)

    /// One datagram of a batch, valid only during the call that lends it.
    public struct Datagram {
        public let source: IPAddress
        public let bytes: UnsafeRawBufferPointer
    }

    /// Opens the socket bound to `address:port`, with `filter` attached and a `receiveBufferBytes` queue.
    ///
    /// - Throws: `SystemCallError`. The corresponding C functions are `socket`, `setsockopt` and `bind`.
    public init(
        bindTo address: IPAddress, port: UInt16, filter: DatagramFilter, receiveBufferBytes: Int32 = 4 << 20,
        sendBufferBytes: Int32 = 4 << 20
    ) throws(SystemCallError) {
        slotSize = filter.payloadSizes.upperBound
        buffers = [UInt8](repeating: 0, count: 64 * slotSize)
        ipv4 = address.isIPv4
        let opened = socket(ipv4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard opened >= 0 else { throw SystemCallError("socket", "open the heartbeat socket") }
        // Released first when lbnode dies, so the peers' next heartbeat meets port unreachable (`takeRefusals`)
        // within milliseconds, before the rings and the TAP have waited out their grace periods. (The kernel delivery
        // classifier stops as this socket goes: it acts only while the socket exists.)
        fd = SystemCall.movedToTopOfTable(opened)
        do throws(SystemCallError) {
            try option(SOL_SOCKET, SO_RCVBUFFORCE, receiveBufferBytes, "set a \(receiveBufferBytes)-byte queue")
            try option(SOL_SOCKET, SO_SNDBUFFORCE, sendBufferBytes, "set a \(sendBufferBytes)-byte send buffer")
            if ipv4 {
                try option(Int32(IPPROTO_IP), IP_TTL, 255, "send heartbeats with TTL 255")
            } else {
                try option(Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, 255, "send heartbeats with hop limit 255")
            }
            // ICMP errors our heartbeats meet are queued for `takeRefusals` (a peer whose lbnode is gone).
            if ipv4 {
                try option(Int32(IPPROTO_IP), IP_RECVERR, 1, "receive the ICMP errors of heartbeats")
            } else {
                try option(Int32(IPPROTO_IPV6), IPV6_RECVERR, 1, "receive the ICMP errors of heartbeats")
            }
            try attach(filter)
            let bound = SocketAddress.with(address, port: port) { bind(fd, $0, $1) }
            guard bound == 0 else {
                throw SystemCallError("bind", "bind the heartbeat socket to \(address) port \(port)")
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
    }

    private var ipv4 = true

    /// Replaces the kernel filter (atomically: no datagram passes unfiltered). The corresponding C function is
    /// `setsockopt(SO_ATTACH_FILTER)`.
    public func attach(_ filter: DatagramFilter) throws(SystemCallError) {
        var program = filter.instructions(ipv4: ipv4)
        let attached = program.withUnsafeMutableBufferPointer { instructions in
            var kernelProgram = sock_fprog(len: UInt16(instructions.count), filter: instructions.baseAddress)
            return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &kernelProgram, socklen_t(MemoryLayout<sock_fprog>.size))
        }
        guard attached == 0 else { throw SystemCallError("setsockopt(SO_ATTACH_FILTER)", "filter heartbeats") }
    }

    private func option(_ level: Int32, _ name: Int32, _ value: Int32, _ operation: String) throws(SystemCallError) {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemCallError("setsockopt", operation)
        }
    }

    /// What became of one datagram.
    public enum SendOutcome: Equatable, Sendable {
        /// Handed to the kernel (which may still hold it while it resolves the peer's address).
        case sent
        /// The send buffer is full: the datagram was given up rather than wait.
        case queueFull
        /// The kernel refused it (no route, the network unreachable, ...).
        case failed(SystemCallError)
    }

    /// Sends one datagram without waiting. The corresponding C function is `sendto` with `MSG_DONTWAIT`.
    ///
    /// With `IP_RECVERR`, an ICMP error that an earlier datagram met (a dead peer's port unreachable) is also left
    /// pending on the socket, and the next send, to whichever peer, fails with it once (which clears it): that send is
    /// tried again. Without the retry, a live peer got no heartbeat from a node whose previous one went to a dead
    /// peer, and declared it dead in turn.
    public func send(_ bytes: [UInt8], to address: IPAddress, port: UInt16) -> SendOutcome {
        let outcome = sendOnce(bytes, to: address, port: port)
        guard case .failed = outcome else { return outcome }
        return sendOnce(bytes, to: address, port: port)
    }

    private func sendOnce(_ bytes: [UInt8], to address: IPAddress, port: UInt16) -> SendOutcome {
        do {
            let sent = try SystemCall.unlessWouldBlock("sendto", "send a heartbeat to \(address) port \(port)") {
                SocketAddress.with(address, port: port) { sendto(fd, bytes, bytes.count, Int32(MSG_DONTWAIT), $0, $1) }
            }
            return sent == nil ? .queueFull : .sent
        } catch {
            return .failed(error)
        }
    }

    /// Waits up to `timeoutMicroseconds` for a datagram (or a queued error): whether one is there. To the
    /// microsecond, where `poll` rounds up to the next millisecond: a peer's deadline is checked when it passes. The
    /// corresponding C function is `ppoll` (`vipfarm_wait_readable`).
    public func wait(timeoutMicroseconds: Int) -> Bool {
        vipfarm_wait_readable(fd, timeoutMicroseconds) > 0
    }

    /// Takes up to 64 queued datagrams without waiting and lends each to `body`; how many were taken. The
    /// corresponding C function is `recvmmsg`.
    public func receiveBatch(_ body: (Datagram) -> Void) -> Int {
        func receive() -> Int32 {
            buffers.withUnsafeMutableBufferPointer { buffers in
                vipfarm_receive_datagrams(fd, buffers.baseAddress, UInt32(slotSize), 64, &lengths, &sources)
            }
        }
        // A pending ICMP error fails a receive once, as it does a send (see `send`).
        var count = receive()
        if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK { count = receive() }
        guard count > 0 else { return 0 }
        buffers.withUnsafeBytes { all in
            for index in 0..<Int(count) {
                let start = index * slotSize
                let bytes = UnsafeRawBufferPointer(rebasing: all[start..<(start + min(Int(lengths[index]), slotSize))])
                body(Datagram(source: SocketAddress.address(of: sources[index]), bytes: bytes))
            }
        }
        return Int(count)
    }

    /// A heartbeat of ours that a peer's kernel refused: nothing listens on the port (port unreachable), so the
    /// peer's host is up but its lbnode is not.
    public struct Refusal: Equatable, Sendable {
        /// Where the heartbeat was sent.
        public let peer: IPAddress
        /// The heartbeat, as far as the ICMP error quoted it.
        public let quoted: [UInt8]
    }

    /// Takes up to `limit` ICMP errors from the socket's error queue without waiting; the port-unreachable ones (the
    /// others: a router's, an administrative reject, are no evidence about lbnode). Must be called after every wait:
    /// a queued error keeps `poll` returning. The corresponding C function is `recvmsg(MSG_ERRQUEUE)`.
    public func takeRefusals(limit: Int = 16) -> [Refusal] {
        var refusals: [Refusal] = []
        var payload = [UInt8](repeating: 0, count: slotSize)
        for _ in 0..<limit {
            var destination = sockaddr_in6()
            var (origin, type, code): (UInt8, UInt8, UInt8) = (0, 0, 0)
            let count = vipfarm_receive_error(fd, &payload, UInt(payload.count), &destination, &origin, &type, &code)
            guard count >= 0 else { break }
            let portUnreachable =
                (origin == UInt8(SO_EE_ORIGIN_ICMP) && type == 3 && code == 3)
                || (origin == UInt8(SO_EE_ORIGIN_ICMP6) && type == 1 && code == 4)
            if portUnreachable {
                let quoted = Array(payload[0..<min(count, payload.count)])
                refusals.append(Refusal(peer: SocketAddress.address(of: destination), quoted: quoted))
            }
        }
        return refusals
    }

    /// Datagrams the kernel dropped for this socket (refused by the filter, or the queue was full).
    public var kernelDrops: UInt64 { UInt64(vipfarm_socket_drops(fd)) }
}
