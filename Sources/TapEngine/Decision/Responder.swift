import Hashing

/// Builds the frames the engine itself sends, in one buffer allocated at start-up: ARP replies for the VIP (sender
/// hardware address = the virtual MAC, Ethernet source = the interface's own MAC, so the virtual MAC is never a
/// source MAC and switches keep flooding it), gratuitous ARP announcements, and IPv6 neighbour advertisements.
struct Responder {
    /// 128 bytes: room for an ARP frame padded to the Ethernet minimum or a neighbour advertisement (86 bytes).
    private let buffer: UnsafeMutableRawBufferPointer

    init() {
        buffer = .allocate(byteCount: 128, alignment: 8)
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
        put(state.answerMAC, bytes: 6)
        put(UInt64(vip), bytes: 4)
        put(request == nil ? 0 : targetMAC, bytes: 6)
        put(UInt64(targetIP), bytes: 4)
        put(0, bytes: 60 - offset)  // padding to the Ethernet minimum
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: 60)
    }

    /// A neighbour advertisement for the IPv6 VIP, target link-layer address option = the answer MAC: answering
    /// `solicitation` (solicited and override set), or with none, unsolicited to all nodes (override set: RFC 4861
    /// 7.2.6), the IPv6 counterpart of a gratuitous ARP, which teaches the switch the source MAC.
    ///
    /// - Warning: the returned bytes are valid until the next call.
    func neighbourAdvertisement(to solicitation: Frame?, state: EngineState, ethernetSource: UInt64)
        -> UnsafeRawBufferPointer
    {
        // A solicitation from the unspecified address is duplicate address detection: someone else wants the VIP.
        guard !state.vip.isIPv4, solicitation?.key.client != IPAddress(high: 0, low: 0) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        let allNodes = IPAddress(high: 0xFF02_0000_0000_0000, low: 1)
        let destination = solicitation?.key.client ?? allNodes
        var offset = 0
        func put(_ value: UInt64, bytes: Int) {
            for index in 0..<bytes {
                buffer[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * (bytes - 1 - index)))
            }
            offset += bytes
        }
        put(solicitation?.sourceMAC ?? 0x3333_0000_0001, bytes: 6)
        put(ethernetSource, bytes: 6)
        put(0x86DD, bytes: 2)
        put(0x6000_0000, bytes: 4)  // version 6, no traffic class or flow label
        put(32, bytes: 2)  // payload: the 32-byte advertisement
        put(58, bytes: 1)  // ICMPv6
        put(255, bytes: 1)  // hop limit 255, as neighbour discovery requires
        put(state.vip.high, bytes: 8)
        put(state.vip.low, bytes: 8)
        put(destination.high, bytes: 8)
        put(destination.low, bytes: 8)
        let icmp = offset
        put(0x8800_0000, bytes: 4)  // type 136, code 0, checksum filled below
        put(solicitation == nil ? 0x2000_0000 : 0x6000_0000, bytes: 4)  // (solicited,) override
        put(state.vip.high, bytes: 8)
        put(state.vip.low, bytes: 8)
        put(0x0201, bytes: 2)  // option: target link-layer address, 8 bytes
        put(state.answerMAC, bytes: 6)
        // Checksum over the pseudo-header (addresses, length 32, next header 58) and the message.
        var sum: UInt32 = 32 + 58
        for index in stride(from: 22, to: 54, by: 2) { sum += UInt32(buffer[index]) << 8 | UInt32(buffer[index + 1]) }
        for index in stride(from: icmp, to: offset, by: 2) {
            sum += UInt32(buffer[index]) << 8 | UInt32(buffer[index + 1])
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        buffer[icmp + 2] = UInt8(checksum >> 8)
        buffer[icmp + 3] = UInt8(checksum & 0xFF)
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: offset)
    }
}
