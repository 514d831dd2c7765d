import CKernel
import Glibc

/// The director's forwarded frames (directed mode), re-addressed to their owner's MAC and sent in batches with one
/// `sendmmsg` of up to 64 frames, straight from where they lie (their ring slots, or the buffer a long frame was read
/// into): nothing is copied, and the frames must stay where they are until `flush`, which the ring guarantees (a slot
/// goes back to the kernel only after its batch's forwards are sent).
///
/// Each frame keeps its offload header (the packet socket has `PACKET_VNET_HDR`): a merged 64 KB frame or one with a
/// partial checksum leaves as one GSO packet, and the kernel or the NIC segments and checksums it for the wire.
///
/// A forwarded frame leaves from the director's own MAC, as from a router: sent with the client's MAC as its source,
/// it would teach the switch that the client sits on the director's port, and the servers' replies would go there.
final class ForwardBatch {
    static let maximumFrames = 64
    private let frames = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: maximumFrames)
    private let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: maximumFrames)
    private var count = 0
    /// The director's interface MAC, the source of every forwarded frame.
    private let sourceMAC: UInt64

    init(sourceMAC: UInt64) {
        self.sourceMAC = sourceMAC
    }

    deinit {
        frames.deallocate()
        lengths.deallocate()
    }

    /// Queues `frame` (its offload header, then the Ethernet frame), rewriting in place its destination MAC to `mac`
    /// and its source to the director's: the engine is done with it, and its slot is the engine's until the batch
    /// ends. Flushes first when the batch is full. Returns what a flush sent and failed, if one ran.
    @inline(__always)
    func add(_ frame: UnsafeRawBufferPointer, to mac: UInt64, fd: Int32) -> (sent: Int, failed: Int) {
        guard frame.count >= OffloadHeader.size + 14, frame.count <= Int(UInt32.max) else { return (0, 1) }
        var flushed = (sent: 0, failed: 0)
        if count == Self.maximumFrames { flushed = flush(fd: fd) }
        let start = UnsafeMutableRawPointer(mutating: frame.baseAddress!)
        let ethernet = start + OffloadHeader.size
        for index in 0..<6 {
            let shift = UInt64(40 - 8 * index)
            ethernet.storeBytes(of: UInt8(truncatingIfNeeded: mac >> shift), toByteOffset: index, as: UInt8.self)
            ethernet.storeBytes(
                of: UInt8(truncatingIfNeeded: sourceMAC >> shift), toByteOffset: 6 + index, as: UInt8.self)
        }
        frames[count] = start
        lengths[count] = UInt32(frame.count)
        count += 1
        return flushed
    }

    /// Sends what is queued on the packet socket `fd`. `sendmmsg` stops at the first frame the kernel refuses (a
    /// full queue on the way: ENOBUFS); that one is counted as failed and the rest still go. The corresponding C
    /// function is `sendmmsg`.
    func flush(fd: Int32) -> (sent: Int, failed: Int) {
        var (sent, failed, next) = (0, 0, 0)
        while next < count {
            let done = max(
                0, Int(vipfarm_send_frames(fd, frames + next, lengths + next, UInt32(count - next))))
            sent += done
            if next + done < count { failed += 1 }  // the refused frame
            next = min(count, next + done + 1)
        }
        count = 0
        return (sent, failed)
    }
}
