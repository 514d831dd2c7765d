import CPcap
import Glibc
import Hashing

/// Why the packet port could not be opened: libpcap's own message.
public struct PacketPortError: Error, CustomStringConvertible {
    public let operation: String
    public let message: String
    public var description: String {
        let hint = message.contains("ermission") ? " (needs CAP_NET_RAW: run as root)" : ""
        return "\(operation): \(message)\(hint)"
    }
}

/// The receive ring and transmit path on the server's interface, through libpcap over an AF_PACKET TPACKET_V3 ring:
/// frames are read in place in the ring, in batches, after a kernel BPF filter dropped everything that is not for
/// the VIP.
///
/// - Warning: only the engine thread uses it.
final class PacketPort {
    private let handle: OpaquePointer

    /// Opens `interface`, attaches the filter for `vip`, and adds `virtualMAC` to the NIC's unicast list (and, for an
    /// IPv6 VIP, its solicited-node group to the multicast list) so its frames arrive without promiscuous mode.
    ///
    /// - Parameters:
    ///   - bufferBytes: the ring size.
    ///   - blockTimeoutMilliseconds: the TPACKET_V3 block retire timeout, the longest a frame waits in a block that
    ///     is not full (short, so that failover and latency are not measured in ring blocks).
    /// The corresponding C functions are `pcap_create`, `pcap_activate`, `pcap_compile` and `pcap_setfilter`.
    init(
        interface: String, vip: IPAddress, virtualMAC: UInt64, bufferBytes: Int32, blockTimeoutMilliseconds: Int32
    ) throws(PacketPortError) {
        let filter = Self.filter(vip: vip, virtualMAC: virtualMAC)
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_create(interface, &errorBuffer) else {
            throw PacketPortError(
                operation: "open \(interface)",
                message: String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.handle = handle
        pcap_set_snaplen(handle, 65535)
        pcap_set_promisc(handle, 0)
        pcap_set_timeout(handle, blockTimeoutMilliseconds)
        pcap_set_buffer_size(handle, bufferBytes)
        let status = pcap_activate(handle)
        guard status >= 0 else {
            let message = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw PacketPortError(operation: "activate capture on \(interface)", message: message)
        }
        do throws(PacketPortError) {
            try check(pcap_setdirection(handle, PCAP_D_IN), "receive only inbound frames on \(interface)")
            var program = bpf_program()
            try check(pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN), "compile filter '\(filter)'")
            defer { pcap_freecode(&program) }
            try check(pcap_setfilter(handle, &program), "attach filter to \(interface)")
            let fd = pcap_get_selectable_fd(handle)
            let index = Int32(if_nametoindex(interface))
            var memberships: [(mac: UInt64, multicast: Bool)] = [(virtualMAC, false)]
            if !vip.isIPv4 {
                // Neighbour solicitations for the VIP go to its solicited-node group, 33:33:ff + its last 3 bytes.
                memberships.append((0x3333_FF00_0000 | vip.low & 0xFF_FFFF, true))
            }
            for membership in memberships {
                var mac = PacketBuilder.macBytes(membership.mac)
                guard vipfarm_add_membership(fd, index, membership.multicast ? 1 : 0, &mac) == 0 else {
                    throw PacketPortError(
                        operation: "receive \(macText(membership.mac)) on \(interface)",
                        message: String(cString: strerror(errno)))
                }
            }
        } catch {
            pcap_close(handle)
            throw error
        }
    }

    deinit {
        pcap_close(handle)
    }

    private func check(_ status: Int32, _ operation: String) throws(PacketPortError) {
        guard status >= 0 else {
            throw PacketPortError(operation: operation, message: String(cString: pcap_geterr(handle)))
        }
    }

    /// Hands every frame waiting in the ring (or arriving before the block timeout) to `engine.handle(frame:)`, in
    /// place in the ring; returns the number of frames, or -1 on error, -2 after `breakLoop`. The corresponding C
    /// function is `pcap_dispatch`.
    func dispatch(to engine: Engine) -> Int32 {
        let context = Unmanaged.passUnretained(engine).toOpaque()
        return pcap_dispatch(
            handle, -1,
            { user, header, bytes in
                guard let user, let header, let bytes else { return }
                let engine = Unmanaged<Engine>.fromOpaque(user).takeUnretainedValue()
                engine.handle(frame: UnsafeRawBufferPointer(start: bytes, count: Int(header.pointee.caplen)))
            }, context.assumingMemoryBound(to: UInt8.self))
    }

    /// Sends one frame on the interface; `false` if the kernel refused it. The corresponding C function is
    /// `pcap_inject`.
    func inject(_ frame: UnsafeRawBufferPointer) -> Bool {
        pcap_inject(handle, frame.baseAddress, frame.count) == frame.count
    }

    /// Frames the kernel dropped since the port opened because the ring was full. The corresponding C function is
    /// `pcap_stats`.
    func kernelDrops() -> UInt64 {
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return 0 }
        return UInt64(stats.ps_drop)
    }

    /// The packet socket under libpcap. The corresponding C function is `pcap_get_selectable_fd`.
    var socketDescriptor: Int32 { pcap_get_selectable_fd(handle) }

    /// Makes a `dispatch` in progress return. The corresponding C function is `pcap_breakloop`.
    func breakLoop() {
        pcap_breakloop(handle)
    }

    /// The kernel filter for a farm: client frames to the virtual MAC and the VIP, and ARP requests or neighbour
    /// solicitations for the VIP.
    static func filter(vip: IPAddress, virtualMAC: UInt64) -> String {
        let mac = macText(virtualMAC)
        if let v4 = vip.ipv4Value {
            let hex = "0x" + String(v4, radix: 16)
            return "(ether dst \(mac) and ip dst \(vip)) or (arp and arp[6:2] = 1 and arp[24:4] = \(hex))"
        }
        return "(ether dst \(mac) and ip6 dst \(vip)) or (icmp6 and ip6[40] = 135)"
    }
}
