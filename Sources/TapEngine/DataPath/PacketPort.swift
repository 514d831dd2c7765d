/// Where the engine's frames come from and where its own frames go out: the interface's receive ring (`RingPort`),
/// or a scripted fake in tests. Called once per batch, never per frame, except for `forward`.
///
/// - Warning: only the engine thread uses a port.
protocol PacketPort: AnyObject {
    /// Hands the frames that are ready (or arrive within the poll timeout) to `handle`, in place in the ring, and
    /// calls `endOfBatch` after the last frame of each batch, before their ring slots go back to the kernel: writes
    /// queued from a batch must complete there. With each frame comes the one after it, when it is ready and
    /// handed over next in the same batch (`next`, valid until that frame's turn), so that the engine can start on
    /// it (`EngineWorker`'s lookahead). Returns how many frames were handed over.
    func receive(_ handle: (ReceivedFrame, _ next: ReceivedFrame?) -> Void, endOfBatch: () -> Void) -> Int

    /// The whole frame whose head `handle` was given (`ReceivedFrame.wholeLength`), read from where it waits; valid
    /// until `handle` returns. Nil if it is gone (the queue had no room): count it as cut. A head whose frame is not
    /// taken is discarded unread.
    func takeWhole() -> ReceivedFrame?

    /// Queues `frame` (with its offload header) for its owner `mac` (directed mode), from the interface's own MAC;
    /// returns what a flush this caused sent and failed.
    func forward(_ frame: ReceivedFrame, to mac: UInt64) -> (sent: Int, failed: Int)

    /// Sends what `forward` queued.
    func flushForwards() -> (sent: Int, failed: Int)

    /// Sends one frame the engine built (ARP replies, announcements; no offload header); `false` if refused.
    func send(_ frame: UnsafeRawBufferPointer) -> Bool

    /// Frames the kernel dropped because the ring was full, since the port opened.
    func kernelDrops() -> UInt64

    /// Makes a `receive` that waits for frames return at once (or the next one, if none waits). The one call another
    /// thread may make: the engine's `swap`, `announce` and `stop` do, so that an idle engine can wait long.
    func wake()
}
