import CKernel
import CPcap
import Hashing

/// The farm's kernel filter: client frames to the virtual MAC and the VIP, and ARP requests or neighbour
/// solicitations for the VIP. Everything else stays out of the ring. libpcap compiles the expression to classic BPF.
enum KernelFilter {
    /// The largest frame the filter passes whole: a merged (GRO/TSO) frame is at most 64 KB; longer ones (BIG TCP)
    /// arrive cut, and the engine drops and counts them.
    static let snapshotLength: Int32 = 65535

    /// The filter as a pcap expression.
    static func expression(vip: IPAddress, virtualMAC: UInt64) -> String {
        let mac = macText(virtualMAC)
        if let v4 = vip.ipv4Value {
            let hex = "0x" + String(v4, radix: 16)
            return "(ether dst \(mac) and ip dst \(vip)) or (arp and arp[6:2] = 1 and arp[24:4] = \(hex))"
        }
        return "(ether dst \(mac) and ip6 dst \(vip)) or (icmp6 and ip6[40] = 135)"
    }

    /// Compiles the filter and lends it to `body` as the kernel takes it (`SO_ATTACH_FILTER`). The corresponding C
    /// functions are `pcap_open_dead`, `pcap_compile` and `pcap_freecode`.
    static func withProgram<T>(
        vip: IPAddress, virtualMAC: UInt64, _ body: (inout sock_fprog) throws(SystemCallError) -> T
    ) throws(SystemCallError) -> T {
        let expression = expression(vip: vip, virtualMAC: virtualMAC)
        guard let dead = pcap_open_dead(DLT_EN10MB, snapshotLength) else {
            throw SystemCallError("pcap_open_dead", "compile the filter '\(expression)'", errno: ENOMEM)
        }
        defer { pcap_close(dead) }
        var program = bpf_program()
        guard pcap_compile(dead, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            let message = String(cString: pcap_geterr(dead))
            throw SystemCallError("pcap_compile", "compile the filter '\(expression)' (\(message))", errno: EINVAL)
        }
        defer { pcap_freecode(&program) }
        var kernelProgram = sock_fprog(
            len: UInt16(program.bf_len),
            filter: UnsafeMutableRawPointer(program.bf_insns).assumingMemoryBound(to: sock_filter.self))
        return try body(&kernelProgram)
    }
}
