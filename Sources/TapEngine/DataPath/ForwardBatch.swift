import CKernel
import Glibc

/// The director's forwarded frames (directed mode), re-addressed to their owner's MAC and sent in batches with one
/// `sendmmsg`: up to 64 frames or 256 KiB, and always before the ring slots they came from go back.
///
/// Each frame keeps its offload header (the packet socket has `PACKET_VNET_HDR`): a merged 64 KB frame or one with a
/// partial checksum leaves as one GSO packet, and the kernel or the NIC segments and checksums it for the wire.
///
/// A forwarded frame leaves from the director's own MAC, as from a router: sent with the client's MAC as its source,
/// it would teach the switch that the client sits on the director's port, and the servers' replies would go there.
final class ForwardBatch {
    static let maximumFrames = 64
    static let capacity = 256 << 10
    private let data = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
    private let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: maximumFrames)
    private var used = 0
    private var count = 0
    /// The director's interface MAC, the source of every forwarded frame.
    private let sourceMAC: UInt64

    init(sourceMAC: UInt64) {
        self.sourceMAC = sourceMAC
    }

    deinit {
        data.deallocate()
        lengths.deallocate()
    }

    /// Copies `frame` (its offload header, then the Ethernet frame) with its destination MAC replaced by `mac` and
    /// its source by the director's; flushes first when it would not fit. Returns what a flush sent and failed, if
    /// one ran.
    @inline(__always)
    func add(_ frame: UnsafeRawBufferPointer, to mac: UInt64, fd: Int32) -> (sent: Int, failed: Int) {
        guard frame.count >= OffloadHeader.size + 14, frame.count <= Self.capacity else { return (0, 1) }
        var flushed = (sent: 0, failed: 0)
        if count == Self.maximumFrames || used + frame.count > Self.capacity { flushed = flush(fd: fd) }
        data.baseAddress!.advanced(by: used).copyMemory(from: frame.baseAddress!, byteCount: frame.count)
        let start = data.baseAddress! + used + OffloadHeader.size
        for index in 0..<6 {
            let shift = UInt64(40 - 8 * index)
            start.storeBytes(of: UInt8(truncatingIfNeeded: mac >> shift), toByteOffset: index, as: UInt8.self)
            start.storeBytes(of: UInt8(truncatingIfNeeded: sourceMAC >> shift), toByteOffset: 6 + index, as: UInt8.self)
        }
        lengths[count] = UInt32(frame.count)
        used += frame.count
        count += 1
        return flushed
    }

    /// Sends what is queued on the packet socket `fd`. `sendmmsg` stops at the first frame the kernel refuses (a
    /// full queue on the way: ENOBUFS); that one is counted as failed and the rest still go. The corresponding C
    /// function is `sendmmsg`.
    func flush(fd: Int32) -> (sent: Int, failed: Int) {
        var (sent, failed, next, offset) = (0, 0, 0, 0)
        while next < count {
            let done = max(
                0,
                Int(
                    vipfarm_send_frames(
                        fd, data.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self),
                        lengths.advanced(by: next), UInt32(count - next))))
            sent += done
            if next + done < count { failed += 1 }  // the refused frame
            let resume = min(count, next + done + 1)
            for index in next..<resume { offset += Int(lengths[index]) }
            next = resume
        }
        used = 0
        count = 0
        return (sent, failed)
    }
}
