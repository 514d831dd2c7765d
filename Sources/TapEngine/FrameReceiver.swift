/// Where the engine's frames come from and its own frames go out: libpcap's ring (`PacketPort`) or the TPACKET_V3 ring
/// read directly (`RingPort`). Called once per batch, never per frame.
protocol FrameReceiver: AnyObject {
    /// Hands the frames that are ready (or arrive within the block timeout) to `engine.handle(frame:)`, in place;
    /// returns how many, or a negative value on error.
    func dispatch(to engine: Engine) -> Int32
    /// Sends one frame on the interface; `false` if the kernel refused it.
    func inject(_ frame: UnsafeRawBufferPointer) -> Bool
    /// Frames the kernel dropped because the ring was full, since the port opened.
    func kernelDrops() -> UInt64
    /// Makes a `dispatch` in progress return soon.
    func breakLoop()
    /// The packet socket, for batched sends.
    var socketDescriptor: Int32 { get }
}

extension PacketPort: FrameReceiver {}
