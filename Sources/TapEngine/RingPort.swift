import CKernel
import Glibc
import Hashing

/// The interface's receive ring: an AF_PACKET TPACKET_V3 ring that the engine walks block by block, in place, with
/// each frame's offload header in front of it (`PACKET_VNET_HDR`). Walking blocks itself is what lets TAP writes be
/// batched straight from the ring: a block goes back to the kernel only after every write from it has completed
/// (`endOfBlock`). The same socket sends the director's forwards (with their offload headers, so the kernel or the
/// NIC segments and checksums them) and the engine's ARP answers.
///
/// - Warning: only the engine thread uses it.
final class RingPort: PacketPort {
    private let fd: Int32
    private let ring: UnsafeMutableRawPointer
    private let blockSize = 1 << 20
    private let blockCount: Int
    private let timeoutMilliseconds: Int32
    private var current = 0
    private var drops: UInt64 = 0
    private let forwards: ForwardBatch
    /// An empty offload header, in front of every frame the engine builds itself.
    private let emptyHeader = UnsafeMutableRawBufferPointer.allocate(byteCount: OffloadHeader.size, alignment: 8)
    /// Blocks handed over per `receive`, so state swaps and counters are never further apart than this.
    static let blocksPerDispatch = 4

    /// Opens the ring on `interface` with the farm's kernel filter, and adds the virtual MAC (and, for an IPv6 VIP,
    /// its solicited-node group) to the NIC's address lists, so those frames arrive without promiscuous mode.
    ///
    /// - Parameters:
    ///   - interfaceMAC: the NIC's own MAC, the source of forwarded frames.
    ///   - blockTimeoutMilliseconds: the longest a frame waits in a block that is not full (short, so that failover
    ///     and latency are not measured in ring blocks).
    /// - Throws: `SystemCallError`. The corresponding C calls are `socket(AF_PACKET)`, `setsockopt(SO_ATTACH_FILTER,
    ///   PACKET_IGNORE_OUTGOING, PACKET_VNET_HDR, PACKET_VERSION, PACKET_RX_RING, PACKET_ADD_MEMBERSHIP)`, `mmap` and
    ///   `bind`.
    init(
        interface: String, vip: IPAddress, virtualMAC: UInt64, interfaceMAC: UInt64, ringBytes: Int32,
        blockTimeoutMilliseconds: Int32
    ) throws(SystemCallError) {
        blockCount = max(4, Int(ringBytes) / blockSize)
        timeoutMilliseconds = blockTimeoutMilliseconds
        forwards = ForwardBatch(sourceMAC: interfaceMAC)
        emptyHeader.initializeMemory(as: UInt8.self, repeating: 0)
        let index = Int32(if_nametoindex(interface))
        guard index != 0 else {
            emptyHeader.deallocate()
            throw SystemCallError("if_nametoindex", "find interface \(interface)", errno: ENODEV)
        }
        // Protocol 0: nothing is queued before the filter and the ring are in place and `bind` names the protocol.
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            emptyHeader.deallocate()
            throw SystemCallError("socket", "open a packet socket on \(interface)")
        }
        var mapped: UnsafeMutableRawPointer?
        do throws(SystemCallError) {
            try KernelFilter.withProgram(vip: vip, virtualMAC: virtualMAC) { (program) throws(SystemCallError) in
                try Self.set(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, "attach the farm's filter on \(interface)")
            }
            var one: Int32 = 1
            try Self.set(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, "ignore outgoing frames on \(interface)")
            // Before the ring: the kernel lays out each frame with room for its header.
            try Self.set(fd, SOL_PACKET, PACKET_VNET_HDR, &one, "receive offload headers on \(interface)")
            var version = Int32(TPACKET_V3.rawValue)
            try Self.set(fd, SOL_PACKET, PACKET_VERSION, &version, "use TPACKET_V3 on \(interface)")
            var request = tpacket_req3()
            request.tp_block_size = UInt32(blockSize)
            request.tp_block_nr = UInt32(blockCount)
            request.tp_frame_size = 2048
            request.tp_frame_nr = UInt32(blockSize / 2048 * blockCount)
            request.tp_retire_blk_tov = UInt32(blockTimeoutMilliseconds)
            try Self.set(fd, SOL_PACKET, PACKET_RX_RING, &request, "map a \(blockCount) MiB ring on \(interface)")
            let address = mmap(
                nil, blockSize * blockCount, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
            guard let address, address != MAP_FAILED else {
                throw SystemCallError("mmap", "map the receive ring of \(interface)")
            }
            mapped = address
            var link = sockaddr_ll()
            link.sll_family = UInt16(AF_PACKET)
            link.sll_protocol = UInt16(ETH_P_ALL).bigEndian
            link.sll_ifindex = index
            let bound = withUnsafePointer(to: &link) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                }
            }
            guard bound == 0 else { throw SystemCallError("bind", "bind the packet socket to \(interface)") }
            var memberships: [(mac: UInt64, multicast: Bool)] = [(virtualMAC, false)]
            // Neighbour solicitations for an IPv6 VIP go to its solicited-node group, 33:33:ff + its last 3 bytes.
            if !vip.isIPv4 { memberships.append((0x3333_FF00_0000 | vip.low & 0xFF_FFFF, true)) }
            for membership in memberships {
                var mac = PacketBuilder.macBytes(membership.mac)
                guard vipfarm_add_membership(fd, index, membership.multicast ? 1 : 0, &mac) == 0 else {
                    throw SystemCallError(
                        "setsockopt(PACKET_ADD_MEMBERSHIP)", "receive \(macText(membership.mac)) on \(interface)")
                }
            }
        } catch {
            if let mapped { munmap(mapped, blockSize * blockCount) }
            close(fd)
            emptyHeader.deallocate()
            throw error
        }
        self.fd = fd
        ring = mapped!
    }

    deinit {
        munmap(ring, blockSize * blockCount)
        close(fd)
        emptyHeader.deallocate()
    }

    private static func set<T>(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: inout T, _ operation: String)
        throws(SystemCallError)
    {
        guard setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<T>.size)) == 0 else {
            throw SystemCallError("setsockopt", operation)
        }
    }

    func receive(_ handle: (ReceivedFrame) -> Void, endOfBlock: () -> Void) -> Int {
        if vipfarm_block_ready(block(current)) == 0 {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, timeoutMilliseconds) > 0 && poller.revents & Int16(POLLERR) != 0 {
                // The interface went down (ENETDOWN): reading SO_ERROR clears it, so the next poll blocks again.
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            }
        }
        var frames = 0
        for _ in 0..<Self.blocksPerDispatch {
            let block = block(current)
            guard vipfarm_block_ready(block) != 0 else { break }
            var packet = vipfarm_block_first_packet(block)
            for _ in 0..<vipfarm_block_packets(block) {
                let info = vipfarm_packet_info(packet)
                let start = UnsafeRawPointer(info.frame) - OffloadHeader.size
                handle(
                    ReceivedFrame(
                        withOffloadHeader: UnsafeRawBufferPointer(
                            start: start, count: Int(info.captured) + OffloadHeader.size),
                        isTruncated: info.captured < info.length,
                        vlanTag: info.status & UInt32(TP_STATUS_VLAN_VALID) != 0 ? info.vlan_tci : nil))
                packet = vipfarm_packet_next(packet)
                frames += 1
            }
            endOfBlock()  // batched writes from this block complete before it goes back
            vipfarm_block_release(block)
            current = (current + 1) % blockCount
        }
        return frames
    }

    @inline(__always)
    func forward(_ frame: ReceivedFrame, to mac: UInt64) -> (sent: Int, failed: Int) {
        forwards.add(frame.withOffloadHeader, to: mac, fd: fd)
    }

    func flushForwards() -> (sent: Int, failed: Int) {
        forwards.flush(fd: fd)
    }

    /// The corresponding C function is `sendmsg` (the empty offload header, then the frame).
    func send(_ frame: UnsafeRawBufferPointer) -> Bool {
        var vectors = (
            iovec(iov_base: emptyHeader.baseAddress, iov_len: OffloadHeader.size),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
        )
        let sent = withUnsafeMutableBytes(of: &vectors) { vectors in
            var message = msghdr()
            message.msg_iov = vectors.baseAddress!.assumingMemoryBound(to: iovec.self)
            message.msg_iovlen = 2
            return sendmsg(fd, &message, 0)
        }
        return sent == OffloadHeader.size + frame.count
    }

    func kernelDrops() -> UInt64 {
        drops += UInt64(vipfarm_ring_drops(fd))
        return drops
    }

    private func block(_ index: Int) -> UnsafeMutableRawPointer {
        ring + index * blockSize
    }
}
