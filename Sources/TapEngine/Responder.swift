import Hashing

/// Builds the frames the engine itself sends, in one buffer allocated at start-up: ARP replies for the VIP (sender
/// hardware address = the virtual MAC, Ethernet source = the interface's own MAC, so the virtual MAC is never a
/// source MAC and switches keep flooding it) and gratuitous ARP announcements.
struct Responder {
    /// 64 bytes: an ARP frame padded to the Ethernet minimum.
    private let buffer: UnsafeMutableRawBufferPointer

    init() {
        buffer = .allocate(byteCount: 64, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }

    func deallocate() {
        buffer.deallocate()
    }

    /// An ARP reply to `request` for the VIP, or a gratuitous ARP (`request` = nil: broadcast, target = VIP).
    ///
    /// - Parameters:
    ///   - ethernetSource: the interface's own MAC; in directed mode the director announces from the virtual MAC
    ///     so that switches learn it on its port.
    /// - Warning: the returned bytes are valid until the next call.
    func arp(to request: Frame?, state: EngineState, ethernetSource: UInt64) -> UnsafeRawBufferPointer {
        guard let vip = state.vip.ipv4Value else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let targetMAC = request?.sourceMAC ?? 0xFFFF_FFFF_FFFF
        let targetIP = request?.key.client.ipv4Value ?? vip
        var offset = 0
        func put(_ value: UInt64, bytes: Int) {
            for index in 0..<bytes {
                buffer[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * (bytes - 1 - index)))
            }
            offset += bytes
        }
        put(targetMAC, bytes: 6)
        put(ethernetSource, bytes: 6)
        put(0x0806, bytes: 2)
        put(0x0001_0800_0604, bytes: 6)  // Ethernet, IPv4, 6-byte MACs, 4-byte addresses
        put(request == nil ? 1 : 2, bytes: 2)  // gratuitous ARP as a request, as most stacks expect; else a reply
        put(state.virtualMAC, bytes: 6)
        put(UInt64(vip), bytes: 4)
        put(request == nil ? 0 : targetMAC, bytes: 6)
        put(UInt64(targetIP), bytes: 4)
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: 60)
    }

    /// The frame `original` with its destination MAC replaced by `mac` (directed forwarding), copied into a buffer
    /// of `capacity` bytes.
    static func readdressed(_ original: UnsafeRawBufferPointer, to mac: UInt64, into scratch: UnsafeMutableRawBufferPointer)
        -> UnsafeRawBufferPointer
    {
        let count = min(original.count, scratch.count)
        scratch.baseAddress!.copyMemory(from: original.baseAddress!, byteCount: count)
        for index in 0..<6 { scratch[index] = UInt8(truncatingIfNeeded: mac >> (40 - 8 * index)) }
        return UnsafeRawBufferPointer(start: scratch.baseAddress, count: count)
    }
}
