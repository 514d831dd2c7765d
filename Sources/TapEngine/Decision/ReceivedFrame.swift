/// One frame as the receive ring holds it: the offload header right before the Ethernet frame, and what the ring
/// says of both.
///
/// - Warning: the bytes belong to the ring slot (or copy buffer) the port is walking: valid only until its `endOfBatch`
///   callback returns, never to be kept.
public struct ReceivedFrame {
    /// The offload header and the frame, contiguous: what a TAP opened with `IFF_VNET_HDR` and a packet socket with
    /// `PACKET_VNET_HDR` take, in one write.
    public let withOffloadHeader: UnsafeRawBufferPointer
    /// Whether the ring cut the frame (it was longer than the filter or the ring could hold).
    public let isTruncated: Bool
    /// The 802.1Q tag the kernel took out of the frame (`TP_STATUS_VLAN_VALID`), or nil.
    public let vlanTag: UInt16?
    /// Set when the ring holds only the head of a frame too long for its slot: the whole frame, this long, waits on
    /// the socket, for `PacketPort.takeWhole` (the head is enough to decide; only a frame to deliver or forward is
    /// read whole).
    public let wholeLength: Int?

    /// - Parameter withOffloadHeader: `OffloadHeader.size` bytes of header, then the frame (or its head).
    public init(
        withOffloadHeader: UnsafeRawBufferPointer, isTruncated: Bool = false, vlanTag: UInt16? = nil,
        wholeLength: Int? = nil
    ) {
        precondition(withOffloadHeader.count >= OffloadHeader.size)
        self.withOffloadHeader = withOffloadHeader
        self.isTruncated = isTruncated
        self.vlanTag = vlanTag
        self.wholeLength = wholeLength
    }

    /// The Ethernet frame, from the destination MAC on.
    @inline(__always)
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: withOffloadHeader[OffloadHeader.size...])
    }

    @inline(__always)
    public var offload: OffloadHeader { OffloadHeader(reading: withOffloadHeader.baseAddress!) }

    /// A frame of another VLAN than the interface's own: its tag carries a VLAN ID (ID 0 is a priority tag on the
    /// native VLAN).
    @inline(__always)
    public var isOtherVLAN: Bool {
        guard let vlanTag else { return false }
        return vlanTag & 0x0FFF != 0
    }
}
