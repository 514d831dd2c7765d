/// Where the engine puts the frames it accepts: the TAP device, one write per frame (`TapWriter`) or batched through
/// io_uring (`TapBatchWriter`), or a recording fake in tests. Chosen once at start-up.
///
/// - Warning: only the engine thread uses a sink.
protocol FrameSink: AnyObject {
    /// Writes or queues one frame (its offload header, then the Ethernet frame); returns what was written and what
    /// failed so far (a queue reports when it flushes).
    func queue(_ frame: UnsafeRawBufferPointer) -> (written: UInt32, failed: UInt32)
    /// Completes what is queued; called at the end of every batch, before its ring slots go back to the kernel.
    func flush() -> (written: UInt32, failed: UInt32)
}
