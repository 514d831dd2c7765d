import CKernel
import Glibc
import Hashing

/// The interface's receive ring: an AF_PACKET TPACKET_V2 ring of one slot per frame, walked in place, with each
/// frame's offload header in front of it (`PACKET_VNET_HDR`). A slot goes back to the kernel only after every write
/// from it has completed (`endOfBatch`, at the end of each batch), which is what lets TAP writes be batched straight
/// from the ring. The same socket sends the director's forwards (with their offload headers, so the kernel or the NIC
/// segments and checksums them) and the engine's ARP answers.
///
/// Why TPACKET_V2 and not V3's blocks: a V3 block reaches user space only when it is full or its retire timer fires
/// (1 ms at the least), so at ordinary rates every frame waited for the timer: a request through the VIP took 0.9 ms
/// instead of 0.1. V2 wakes the engine per frame when it sleeps, and costs the same when it is busy.
///
/// Slots hold an MTU-sized frame. Of a longer one (merged by GRO or a peer's TSO, up to 64 KB) the slot holds the head,
/// marked `TP_STATUS_COPY` (`PACKET_COPY_THRESH`), and the kernel queues the whole frame on the socket. The head is
/// enough to decide; a frame to deliver or forward is read whole with its header and VLAN tag (`PACKET_AUXDATA`), one
/// read per 64 KB frame, and one that is not (another node's, in flood mode) is discarded unread.
///
/// - Warning: only the engine thread uses it.
final class RingPort: PacketPort {
    /// The packet socket, where the engine attaches its prefilter.
    let socket: Int32
    /// The fanout group this ring made (`Fanout.lead`), for the engine's other rings to join.
    let fanoutGroup: Int32?

    /// How a ring shares the interface's frames with the engine's other rings (`PACKET_FANOUT`), each frame going to
    /// one ring as `FanoutProgram` picks: the first ring makes the group, the others join it in thread order (a
    /// group's members are numbered in the order they joined).
    enum Fanout {
        case lead
        case join(group: Int32)
    }
    /// An eventfd polled beside the socket: `wake` ends a wait from another thread.
    private let wakeFD: Int32
    private let ring: UnsafeMutableRawPointer
    private let ringSize: Int
    private let blockSize = 1 << 20
    private let slotSize: Int
    private let slotsPerBlock: Int
    private let slotCount: Int
    private let timeoutMilliseconds: Int32
    private var current = 0
    /// The slot being handled is a head whose whole frame waits on the socket, not yet taken.
    private var wholeWaiting = false
    private var drops: UInt64 = 0
    private let forwards: ForwardBatch
    /// An empty offload header, in front of every frame the engine builds itself.
    private let emptyHeader = UnsafeMutableRawBufferPointer.allocate(byteCount: OffloadHeader.size, alignment: 8)
    /// Where a frame too long for its slot is read: the offload header and up to 64 KB of frame.
    private let copied = UnsafeMutableRawBufferPointer.allocate(byteCount: OffloadHeader.size + 65_550, alignment: 16)
    /// Frames handed over per `receive`, so state swaps and counters are never further apart than this.
    static let framesPerDispatch = 512
    /// How long the engine naps after a batch of several frames before it waits for the next one (interrupt
    /// moderation). Measured with `lbbench apps --profile` (flood, one run each, wrk at 32 connections): 0 µs 0.58x
    /// of direct at 0.9 context switches and 41 CPU µs per request, 50 µs 0.57x (1.0, 37 µs), 200 µs 0.67x (0.5,
    /// 30 µs), 400 µs 0.67x (0.4, 28 µs), 1000 µs 0.34x (the machine idles while frames wait).
    static let napMicroseconds: UInt32 = 200
    /// The last `receive` handed over more than one frame: frames are coming faster than they are handled.
    private var busy = false

    /// Opens the ring on `interface` with the farm's kernel filter, and adds the MAC clients send to (and, for an IPv6
    /// VIP, its solicited-node group) to the NIC's address lists, so those frames arrive without promiscuous mode.
    ///
    /// - Parameters:
    ///   - receiveMAC: the MAC client frames are sent to: the virtual MAC, or in relay mode the NIC's own.
    ///   - interfaceMAC: the NIC's own MAC, the source of forwarded frames.
    ///   - pollTimeoutMilliseconds: the longest `receive` waits for a frame, unless `wake` ends the wait, before it
    ///     returns empty-handed (the engine then sends its periodic announcement or sweeps its flow table).
    /// - Throws: `SystemCallError`. The corresponding C calls are `socket(AF_PACKET)`, `ioctl(SIOCGIFMTU)`,
    ///   `setsockopt(SO_ATTACH_FILTER, PACKET_IGNORE_OUTGOING, PACKET_VNET_HDR, PACKET_AUXDATA, PACKET_COPY_THRESH,
    ///   SO_RCVBUFFORCE, PACKET_VERSION, PACKET_RX_RING, PACKET_ADD_MEMBERSHIP, PACKET_FANOUT, PACKET_FANOUT_DATA)`, `mmap`,
    ///   `bind` and `eventfd`.
    init(
        interface: String, vip: IPAddress, receiveMAC: UInt64, interfaceMAC: UInt64, ringBytes: Int32,
        pollTimeoutMilliseconds: Int32, fanout: Fanout? = nil
    ) throws(SystemCallError) {
        timeoutMilliseconds = pollTimeoutMilliseconds
        forwards = ForwardBatch(sourceMAC: interfaceMAC)
        emptyHeader.initializeMemory(as: UInt8.self, repeating: 0)
        let index = Int32(if_nametoindex(interface))
        // Protocol 0: nothing is queued before the filter and the ring are in place and `bind` names the protocol.
        let fd = index == 0 ? -1 : Glibc.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let mtu = fd < 0 ? -1 : Int(vipfarm_interface_mtu(fd, interface))
        guard index != 0, fd >= 0, mtu > 0 else {
            let error = index == 0 ? ENODEV : errno
            if fd >= 0 { close(fd) }
            emptyHeader.deallocate()
            copied.deallocate()
            throw SystemCallError(
                index == 0 ? "if_nametoindex" : "socket", "open a packet socket on \(interface)", errno: error)
        }
        // A slot holds a frame of the MTU with a VLAN tag; 2 KB at the least (a power of two for the usual MTUs).
        slotSize = max(2048, (Int(vipfarm_slot_overhead()) + 18 + mtu + 15) & ~15)
        slotsPerBlock = blockSize / slotSize
        let blockCount = max(4, Int(ringBytes) / blockSize)
        slotCount = slotsPerBlock * blockCount
        ringSize = blockSize * blockCount
        var mapped: UnsafeMutableRawPointer?
        var wakeFD: Int32 = -1
        var group: Int32?
        do throws(SystemCallError) {
            // A ring that joins a fanout group takes nothing until it has joined: before, it would get frames that
            // the group's rings get too.
            if case .join = fanout {
                try Self.withDropAll { (program) throws(SystemCallError) in
                    try Self.set(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, "attach a filter on \(interface)")
                }
            } else {
                try Self.attachFarmFilter(fd, vip: vip, receiveMAC: receiveMAC, interface: interface)
            }
            var one: Int32 = 1
            try Self.set(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, "ignore outgoing frames on \(interface)")
            // Before the ring: the kernel lays out each frame with room for its header.
            try Self.set(fd, SOL_PACKET, PACKET_VNET_HDR, &one, "receive offload headers on \(interface)")
            try Self.set(fd, SOL_PACKET, PACKET_AUXDATA, &one, "receive VLAN tags of long frames on \(interface)")
            // Frames longer than a slot are queued whole on the socket (room for 64 of 64 KB) instead of cut.
            try Self.set(fd, SOL_PACKET, PACKET_COPY_THRESH, &one, "queue long frames on \(interface)")
            var queueBytes: Int32 = 8 << 20
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &queueBytes, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                try Self.set(fd, SOL_SOCKET, SO_RCVBUF, &queueBytes, "size the queue of long frames on \(interface)")
            }
            var version = Int32(TPACKET_V2.rawValue)
            try Self.set(fd, SOL_PACKET, PACKET_VERSION, &version, "use TPACKET_V2 on \(interface)")
            var request = tpacket_req()
            request.tp_block_size = UInt32(blockSize)
            request.tp_block_nr = UInt32(blockCount)
            request.tp_frame_size = UInt32(slotSize)
            request.tp_frame_nr = UInt32(slotCount)
            try Self.set(
                fd, SOL_PACKET, PACKET_RX_RING, &request,
                "map a \(blockCount) MiB ring of \(slotCount) slots on \(interface)")
            let address = mmap(nil, ringSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
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
            switch fanout {
            case nil: break
            case .lead:
                let id = vipfarm_fanout_create(fd)
                guard id >= 0 else { throw SystemCallError("setsockopt(PACKET_FANOUT)", "share \(interface)'s frames") }
                var program = FanoutProgram.instructions(vip: vip)
                let set = program.withUnsafeMutableBufferPointer { code in
                    var fprog = sock_fprog(len: UInt16(code.count), filter: code.baseAddress)
                    return vipfarm_fanout_program(fd, &fprog)
                }
                guard set == 0 else {
                    throw SystemCallError("setsockopt(PACKET_FANOUT_DATA)", "spread \(interface)'s frames over threads")
                }
                group = id
            case .join(let id):
                guard vipfarm_fanout_join(fd, id) == 0 else {
                    throw SystemCallError("setsockopt(PACKET_FANOUT)", "join the rings of \(interface)")
                }
                try Self.attachFarmFilter(fd, vip: vip, receiveMAC: receiveMAC, interface: interface)
            }
            var memberships: [(mac: UInt64, multicast: Bool)] = [(receiveMAC, false)]
            // Neighbour solicitations for an IPv6 VIP go to its solicited-node group, 33:33:ff + its last 3 bytes.
            if !vip.isIPv4 { memberships.append((0x3333_FF00_0000 | vip.low & 0xFF_FFFF, true)) }
            for membership in memberships {
                var mac = PacketBuilder.macBytes(membership.mac)
                guard vipfarm_add_membership(fd, index, membership.multicast ? 1 : 0, &mac) == 0 else {
                    throw SystemCallError(
                        "setsockopt(PACKET_ADD_MEMBERSHIP)", "receive \(macText(membership.mac)) on \(interface)")
                }
            }
            wakeFD = vipfarm_wake_create()
            guard wakeFD >= 0 else { throw SystemCallError("eventfd", "create the engine's wake-up descriptor") }
        } catch {
            if let mapped { munmap(mapped, ringSize) }
            close(fd)
            emptyHeader.deallocate()
            copied.deallocate()
            throw error
        }
        socket = fd
        fanoutGroup = group
        self.wakeFD = wakeFD
        ring = mapped!
    }

    deinit {
        munmap(ring, ringSize)
        close(socket)
        close(wakeFD)
        emptyHeader.deallocate()
        copied.deallocate()
    }

    private static func attachFarmFilter(
        _ fd: Int32, vip: IPAddress, receiveMAC: UInt64, interface: String
    ) throws(SystemCallError) {
        try KernelFilter.withProgram(vip: vip, virtualMAC: receiveMAC) { (program) throws(SystemCallError) in
            try Self.set(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, "attach the farm's filter on \(interface)")
        }
    }

    /// A filter that takes nothing.
    private static func withDropAll(_ body: (inout sock_fprog) throws(SystemCallError) -> Void) throws(SystemCallError)
    {
        var drop = sock_filter(code: 0x06, jt: 0, jf: 0, k: 0)  // BPF_RET | BPF_K: 0
        try withUnsafeMutablePointer(to: &drop) { (pointer) throws(SystemCallError) in
            var program = sock_fprog(len: 1, filter: pointer)
            try body(&program)
        }
    }

    private static func set<T: BitwiseCopyable>(
        _ fd: Int32, _ level: Int32, _ option: Int32, _ value: inout T, _ operation: String
    ) throws(SystemCallError) {
        guard setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<T>.size)) == 0 else {
            throw SystemCallError("setsockopt", operation)
        }
    }

    func receive(_ handle: (ReceivedFrame, _ next: ReceivedFrame?) -> Void, endOfBatch: () -> Void) -> Int {
        // Frames are coming in bunches: a nap gathers the next ones into one batch, where waiting in poll would wake
        // the engine once per frame (a wake-up costs more than the frame). After a batch of one frame (a quiet link,
        // a request and its answer) the engine waits in poll, so that the next frame wakes it at once.
        if busy && vipfarm_slot_status(slot(current)) & UInt32(TP_STATUS_USER) == 0 {
            vipfarm_nap(Self.napMicroseconds, wakeFD)  // a new state (`wake`) ends it
        }
        if vipfarm_slot_status(slot(current)) & UInt32(TP_STATUS_USER) == 0 {
            var pollers = (
                pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            )
            let ready = withUnsafeMutablePointer(to: &pollers) {
                $0.withMemoryRebound(to: pollfd.self, capacity: 2) { poll($0, 2, timeoutMilliseconds) }
            }
            if ready > 0 && pollers.0.revents & Int16(POLLERR) != 0 {
                // The interface went down (ENETDOWN): reading SO_ERROR clears it, so the next poll blocks again.
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length)
            }
            if ready > 0 && pollers.1.revents != 0 { vipfarm_wake_clear(wakeFD) }
        }
        // The frames in the ring now, and no more: the engine checks its lease at a batch's first frame, after this
        // count, so a frame that arrives later (while the engine was stopped mid-batch: a SIGSTOP, a paused VM, a
        // long preemption) waits for the next batch's check instead of being delivered on a lease that ran out
        // meanwhile, when the peers may have taken its bucket.
        var ready = 0
        let most = min(Self.framesPerDispatch, slotCount)
        while ready < most, vipfarm_slot_status(slot((current + ready) % slotCount)) & UInt32(TP_STATUS_USER) != 0 {
            ready += 1
        }
        var frames = 0
        var first = current
        var taken = 0
        // Writes queued from the slots taken so far complete, then the slots go back to the kernel.
        func complete() {
            guard taken > 0 else { return }
            endOfBatch()
            for offset in 0..<taken { vipfarm_slot_release(slot((first + offset) % slotCount)) }
            first = current
            taken = 0
        }
        while frames < ready {
            let slot = slot(current)
            let status = vipfarm_slot_status(slot)  // counted ready: it stays so until this port releases it
            if status & UInt32(TP_STATUS_COPY) != 0 {
                let info = vipfarm_slot_info(slot)
                let head = UnsafeRawBufferPointer(
                    start: UnsafeRawPointer(info.frame) - OffloadHeader.size,
                    count: Int(info.captured) + OffloadHeader.size)
                let vlanTag = status & UInt32(TP_STATUS_VLAN_VALID) != 0 ? info.vlan_tci : nil
                // The slot holds the head; the whole frame waits on the socket, read only if the engine takes it.
                complete()  // the copy buffer is reused: what was queued before goes first
                wholeWaiting = true
                handle(ReceivedFrame(withOffloadHeader: head, vlanTag: vlanTag, wholeLength: Int(info.length)), nil)
                if wholeWaiting { recv(socket, nil, 0, Int32(MSG_DONTWAIT | MSG_TRUNC)) }  // not taken: discarded unread
                wholeWaiting = false
                endOfBatch()
                vipfarm_slot_release(slot)
                current = (current + 1) % slotCount
                first = current
            } else {
                let next = frames + 1 < ready ? readyFrame(at: (current + 1) % slotCount) : nil
                handle(frame(in: slot, status: status), next)
                current = (current + 1) % slotCount
                taken += 1
            }
            frames += 1
        }
        complete()
        busy = frames > 1
        return frames
    }

    /// The frame in a slot the kernel has handed over (not a `TP_STATUS_COPY` one), in place.
    @inline(__always)
    private func frame(in slot: UnsafeMutableRawPointer, status: UInt32) -> ReceivedFrame {
        let info = vipfarm_slot_info(slot)
        return ReceivedFrame(
            withOffloadHeader: UnsafeRawBufferPointer(
                start: UnsafeRawPointer(info.frame) - OffloadHeader.size, count: Int(info.captured) + OffloadHeader.size
            ),
            isTruncated: info.captured < info.length,
            vlanTag: status & UInt32(TP_STATUS_VLAN_VALID) != 0 ? info.vlan_tci : nil)
    }

    /// The frame in slot `index` if the kernel has handed it over and it is not a `TP_STATUS_COPY` one (whose head
    /// the engine handles on its own).
    @inline(__always)
    private func readyFrame(at index: Int) -> ReceivedFrame? {
        let slot = slot(index)
        let status = vipfarm_slot_status(slot)
        guard status & UInt32(TP_STATUS_USER) != 0, status & UInt32(TP_STATUS_COPY) == 0 else { return nil }
        return frame(in: slot, status: status)
    }

    /// The whole frame of the `TP_STATUS_COPY` slot being handled, read from the socket's queue into the copy buffer.
    /// If the queue had no room for it (or it is longer than 64 KB), it comes back cut, to be counted and dropped.
    func takeWhole() -> ReceivedFrame? {
        guard wholeWaiting else { return nil }
        wholeWaiting = false
        var vlanValid: UInt32 = 0
        var vlanTag: UInt16 = 0
        let count = vipfarm_receive_copied(socket, copied.baseAddress, UInt(copied.count), &vlanValid, &vlanTag)
        guard count >= OffloadHeader.size + 14 else { return nil }
        return ReceivedFrame(
            withOffloadHeader: UnsafeRawBufferPointer(rebasing: copied[0..<min(count, copied.count)]),
            isTruncated: count > copied.count, vlanTag: vlanValid != 0 ? vlanTag : nil)
    }

    @inline(__always)
    func forward(_ frame: ReceivedFrame, to mac: UInt64) -> (sent: Int, failed: Int) {
        forwards.add(frame.withOffloadHeader, to: mac, fd: socket)
    }

    func flushForwards() -> (sent: Int, failed: Int) {
        forwards.flush(fd: socket)
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
            return sendmsg(socket, &message, 0)
        }
        return sent == OffloadHeader.size + frame.count
    }

    func wake() {
        vipfarm_wake(wakeFD)
    }

    func kernelDrops() -> UInt64 {
        drops += UInt64(vipfarm_ring_drops(socket))
        return drops
    }

    /// Slot `index`: slots do not straddle blocks.
    @inline(__always)
    private func slot(_ index: Int) -> UnsafeMutableRawPointer {
        ring + (index / slotsPerBlock) * blockSize + (index % slotsPerBlock) * slotSize
    }
}
