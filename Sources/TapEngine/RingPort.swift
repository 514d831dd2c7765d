import CPcap
import Glibc
import Hashing

/// The receive ring read directly: an AF_PACKET TPACKET_V3 ring that the engine walks block by block, so it knows
/// when a block's frames are no longer needed. That is what lets TAP writes be batched (io_uring) straight from the
/// ring: a block goes back to the kernel only after every write from it has completed (`Engine.endOfBlock`).
///
/// - Warning: only the engine thread uses it.
final class RingPort: FrameReceiver {
    private let fd: Int32
    var socketDescriptor: Int32 { fd }
    private let ring: UnsafeMutableRawPointer
    private let blockSize: Int
    private let blockCount: Int
    private let timeoutMilliseconds: Int32
    private var current = 0
    private var drops: UInt64 = 0
    /// Blocks handed over per `dispatch`, so state swaps and counters are never further apart than this.
    static let blocksPerDispatch = 4

    /// Opens the ring on `interface` with the farm's kernel filter and the virtual MAC (and, for an IPv6 VIP, its
    /// solicited-node group) added to the NIC's address lists.
    ///
    /// The corresponding C calls are `socket(AF_PACKET)`, `setsockopt(PACKET_VERSION, PACKET_RX_RING,
    /// SO_ATTACH_FILTER, PACKET_IGNORE_OUTGOING)`, `mmap` and `bind` (in the shim `vipfarm_ring_open`).
    init(interface: String, vip: IPAddress, virtualMAC: UInt64, ringBytes: Int32, blockTimeoutMilliseconds: Int32)
        throws(PacketPortError)
    {
        let filter = PacketPort.filter(vip: vip, virtualMAC: virtualMAC)
        guard let dead = pcap_open_dead(DLT_EN10MB, 65535) else {
            throw PacketPortError(operation: "compile filter '\(filter)'", message: "pcap_open_dead failed")
        }
        defer { pcap_close(dead) }
        var program = bpf_program()
        guard pcap_compile(dead, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw PacketPortError(operation: "compile filter '\(filter)'", message: String(cString: pcap_geterr(dead)))
        }
        defer { pcap_freecode(&program) }
        blockSize = 1 << 20
        blockCount = max(4, Int(ringBytes) / blockSize)
        timeoutMilliseconds = blockTimeoutMilliseconds
        let index = Int32(if_nametoindex(interface))
        var mapped: UnsafeMutableRawPointer?
        fd = vipfarm_ring_open(
            index, &program, UInt32(blockSize), UInt32(blockCount),
            UInt32(blockTimeoutMilliseconds), &mapped)
        guard fd >= 0, index != 0, let mapped else {
            throw PacketPortError(
                operation: "open a TPACKET_V3 ring on \(interface)",
                message: String(cString: strerror(index == 0 ? ENODEV : errno)))
        }
        ring = mapped
        var memberships: [(mac: UInt64, multicast: Bool)] = [(virtualMAC, false)]
        if !vip.isIPv4 { memberships.append((0x3333_FF00_0000 | vip.low & 0xFF_FFFF, true)) }
        for membership in memberships {
            var mac = PacketBuilder.macBytes(membership.mac)
            guard vipfarm_add_membership(fd, index, membership.multicast ? 1 : 0, &mac) == 0 else {
                let message = String(cString: strerror(errno))
                munmap(ring, blockSize * blockCount)
                close(fd)
                throw PacketPortError(operation: "receive \(macText(membership.mac)) on \(interface)", message: message)
            }
        }
    }

    deinit {
        munmap(ring, blockSize * blockCount)
        close(fd)
    }

    func dispatch(to engine: Engine) -> Int32 {
        if vipfarm_block_ready(block(current)) == 0 {
            var poller = pollfd(fd: fd, events: Int16(POLLIN | POLLERR), revents: 0)
            _ = poll(&poller, 1, timeoutMilliseconds)
        }
        var frames: Int32 = 0
        for _ in 0..<Self.blocksPerDispatch {
            let current = block(self.current)
            guard vipfarm_block_ready(current) != 0 else { break }
            var packet = vipfarm_block_first_packet(current)
            for _ in 0..<vipfarm_block_packets(current) {
                var length: UInt32 = 0
                let data = vipfarm_packet_frame(packet, &length)
                engine.handle(frame: UnsafeRawBufferPointer(start: data, count: Int(length)))
                packet = vipfarm_packet_next(packet)
                frames += 1
            }
            engine.endOfBlock()  // batched writes from this block complete before it goes back
            vipfarm_block_release(current)
            self.current = (self.current + 1) % blockCount
        }
        return frames
    }

    func inject(_ frame: UnsafeRawBufferPointer) -> Bool {
        send(fd, frame.baseAddress, frame.count, 0) == frame.count
    }

    func kernelDrops() -> UInt64 {
        drops += UInt64(vipfarm_ring_drops(fd))
        return drops
    }

    func breakLoop() {
        // Nothing to interrupt: a dispatch waits at most one block timeout.
    }

    private func block(_ index: Int) -> UnsafeMutableRawPointer {
        ring + index * blockSize
    }
}
