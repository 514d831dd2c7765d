/// The offload metadata the kernel keeps with a frame (`struct virtio_net_hdr`, 10 bytes, little-endian), as a packet
/// socket with `PACKET_VNET_HDR` puts it in front of every frame, and as a TAP with `IFF_VNET_HDR` and a packet socket
/// take it in front of every frame they are given.
///
/// On a host with the kernel's defaults most TCP frames carry a partial checksum (the sender's checksum offload,
/// `NEEDS_CSUM`: only the pseudo-header sum is in the packet) and many are merged segments up to 64 KB long (TSO or
/// GRO, `gso_type`). Passing the header on with the frame lets the next stack finish them as the hardware would, with
/// no checksum or segmentation done in user space.
public struct OffloadHeader: Sendable, Equatable {
    /// `sizeof(struct virtio_net_hdr)`.
    public static let size = 10

    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `checksumStart + checksumOffset` still has to be completed.
    static let needsChecksum: UInt8 = 1
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
    static let dataValid: UInt8 = 2
    /// `VIRTIO_NET_HDR_GSO_*`, without the ECN bit (0x80).
    static let gsoNone: UInt8 = 0
    static let gsoTCPv4: UInt8 = 1
    static let gsoUDP: UInt8 = 3
    static let gsoTCPv6: UInt8 = 4
    static let gsoUDPL4: UInt8 = 5

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var segmentSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init(
        flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, segmentSize: UInt16 = 0,
        checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.segmentSize = segmentSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Reads the header from its 10 bytes.
    ///
    /// - Warning: `bytes` must hold at least `size` bytes.
    @inline(__always)
    public init(reading bytes: UnsafeRawPointer) {
        flags = bytes.load(as: UInt8.self)
        gsoType = bytes.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        segmentSize = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    /// What the header says of its frame, for the counters.
    @inline(__always)
    public var kind: OffloadKind? {
        switch gsoType & 0x7F {
        case Self.gsoTCPv4: return .mergedTCPv4
        case Self.gsoTCPv6: return .mergedTCPv6
        case Self.gsoUDP, Self.gsoUDPL4: return .mergedUDP
        case Self.gsoNone: break
        default: return .mergedOther
        }
        if flags & Self.needsChecksum != 0 { return .partialChecksum }
        if flags & Self.dataValid != 0 { return .checksumVerified }
        return nil
    }
}

/// The kinds of offload metadata a received frame can carry; an index into the engine's offload counters. A merged
/// frame is counted by its kind alone (it nearly always has a partial checksum too).
public enum OffloadKind: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// One frame, its TCP/UDP checksum partial (the sender's checksum offload; `NEEDS_CSUM`).
    case partialChecksum
    /// One frame whose checksum the NIC already verified (`DATA_VALID`).
    case checksumVerified
    /// Merged TCP/IPv4 segments (GRO, or a peer's TSO), up to 64 KB.
    case mergedTCPv4
    /// Merged TCP/IPv6 segments.
    case mergedTCPv6
    /// Merged UDP datagrams (UDP GSO/GRO).
    case mergedUDP
    /// Another kind of merged frame.
    case mergedOther

    public var description: String {
        switch self {
        case .partialChecksum: "partial_checksum"
        case .checksumVerified: "checksum_verified"
        case .mergedTCPv4: "merged_tcp4"
        case .mergedTCPv6: "merged_tcp6"
        case .mergedUDP: "merged_udp"
        case .mergedOther: "merged_other"
        }
    }
}
