import CURing
import Glibc

/// Batched TAP writes through io_uring: frames are queued straight from the receive ring and submitted together,
/// one system call per batch instead of one per frame.
///
/// - Warning: a queued frame's bytes must stay valid until `flush` returns; `RingPort` keeps its slots until then.
final class TapBatchWriter: FrameSink {
    private let ring: OpaquePointer
    private let tap: TapWriter
    private var queued: UInt32 = 0
    /// Submission queue depth: a flush happens at the latest every this many frames.
    static let depth: UInt32 = 256

    /// - Throws: `SystemCallError` when io_uring is not available (the corresponding C function is
    ///   `io_uring_queue_init`).
    init(tap: TapWriter) throws(SystemCallError) {
        guard let ring = vipfarm_uring_create(Self.depth) else {
            throw SystemCallError("io_uring_queue_init", "set up io_uring for TAP writes")
        }
        self.ring = ring
        self.tap = tap
    }

    deinit {
        vipfarm_uring_destroy(ring)
    }

    /// Queues one frame; when the queue is full it is flushed first. Returns what a flush completed, if one ran.
    @inline(__always)
    func queue(_ frame: UnsafeRawBufferPointer) -> (written: UInt32, failed: UInt32) {
        var result: (written: UInt32, failed: UInt32) = (0, 0)
        if queued == Self.depth { result = flush() }
        if vipfarm_uring_queue_write(ring, tap.fd, frame.baseAddress, UInt32(frame.count)) == 0 {
            queued += 1
        } else {
            result.failed += 1
        }
        return result
    }

    /// Submits the queued writes and waits for them; returns how many wrote a whole frame and how many failed.
    func flush() -> (written: UInt32, failed: UInt32) {
        guard queued > 0 else { return (0, 0) }
        var failed: UInt32 = 0
        let written = vipfarm_uring_flush(ring, queued, &failed)
        let count = queued
        queued = 0
        return written < 0 ? (0, count) : (UInt32(written), failed)
    }
}
