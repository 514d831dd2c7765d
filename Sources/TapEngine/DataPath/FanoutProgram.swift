import CKernel
import Hashing

/// Which engine thread takes a frame: the classic BPF program the rings' fanout group runs (`PACKET_FANOUT_CBPF`), and
/// the same choice in Swift, which each thread checks every frame against (`wrong_thread`).
///
/// The thread follows the client's address, so every segment of a connection, its fragments, and the ICMP errors
/// that quote a packet the VIP sent it (keyed by the quoted destination, as `FrameParser` keys them) meet the same
/// flow table. ARP and neighbour solicitations go to thread 0, which answers them and sends the announcements.
/// `PACKET_FANOUT_HASH` would not do: its seed is the kernel's, so user space could not check it.
///
/// The program addresses the network header through `SKF_NET_OFF` and reads the protocol from the socket buffer, so it
/// does not depend on where the fanout hook finds the frame's data, nor on VLAN tags (the kernel strips the outer one
/// before packet sockets see the frame).
enum FanoutProgram {
    /// The thread of `frame` among `threads`, as the program picks it.
    @inline(__always)
    static func thread(of frame: Frame, threads: Int) -> Int {
        guard threads > 1, frame.kind == .ip else { return 0 }
        return thread(ofClient: frame.key.client, threads: threads)
    }

    /// The thread of an IP frame whose client is `client`.
    @inline(__always)
    static func thread(ofClient client: IPAddress, threads: Int) -> Int {
        guard threads > 1 else { return 0 }
        let word =
            client.isIPv4
            ? UInt32(truncatingIfNeeded: client.low)
            : UInt32(truncatingIfNeeded: client.high >> 32) ^ UInt32(truncatingIfNeeded: client.high)
                ^ UInt32(truncatingIfNeeded: client.low >> 32) ^ UInt32(truncatingIfNeeded: client.low)
        return Int(mix(word)) % threads
    }

    /// Spreads addresses that differ in a few bits (a client subnet) over the threads.
    @inline(__always)
    static func mix(_ word: UInt32) -> UInt32 {
        (word &* 0x9E37_79B1) >> 16
    }

    private typealias Step = ClassicBPF.Step
    private typealias BPF = ClassicBPF

    /// The program for a farm whose VIP is `vip` (the quoted packet of an ICMP error must come from it).
    static func instructions(vip: IPAddress) -> [sock_filter] {
        var steps = [Step(code: BPF.loadHalf, k: BPF.protocolField)]
        steps += vip.isIPv4 ? ipv4Steps(vip: vip) : ipv6Steps(vip: vip)
        steps += [
            Step(code: BPF.multiply, k: 0x9E37_79B1, label: "mix"),
            Step(code: BPF.shiftRight, k: 16),
            Step(code: BPF.returnA, k: 0),
            Step(code: BPF.returnValue, k: 0, label: "first"),
        ]
        return BPF.assemble(steps)
    }

    /// A = the client's address: the source, or the destination an ICMP error quotes.
    private static func ipv4Steps(vip: IPAddress) -> [Step] {
        let quoted = BPF.network + 8  // the quoted IPv4 header, after the ICMP header (X: the outer header's length)
        return [
            Step(code: BPF.jumpIfEqual, k: 0x0800, ifFalse: .label("first")),
            Step(code: BPF.loadByte, k: BPF.network + 9),
            Step(code: BPF.jumpIfEqual, k: 1, ifFalse: .label("source")),  // ICMP
            Step(code: BPF.loadHalf, k: BPF.network + 6),
            Step(code: BPF.jumpIfAnyBit, k: 0x1FFF, ifTrue: .label("source")),  // a later fragment: no ICMP header
            Step(code: BPF.loadHeaderLength, k: BPF.network),
            Step(code: BPF.loadByteIndexed, k: BPF.network),  // the ICMP type
            Step(code: BPF.jumpIfEqual, k: 3, ifTrue: .label("quote")),
            Step(code: BPF.jumpIfEqual, k: 4, ifTrue: .label("quote")),
            Step(code: BPF.jumpIfEqual, k: 11, ifTrue: .label("quote")),
            Step(code: BPF.jumpIfEqual, k: 12, ifTrue: .label("quote"), ifFalse: .label("source")),
            Step(code: BPF.loadByteIndexed, k: quoted, label: "quote"),  // version 4, a header of 20 bytes or more
            Step(code: BPF.jumpIfAtLeast, k: 0x45, ifFalse: .label("source")),
            Step(code: BPF.jumpIfAbove, k: 0x4F, ifTrue: .label("source")),
            Step(code: BPF.loadWordIndexed, k: quoted + 12),
            Step(code: BPF.jumpIfEqual, k: vip.ipv4Value!, ifFalse: .label("source")),
            Step(code: BPF.loadWordIndexed, k: quoted + 16),
            Step(code: BPF.jump, k: 0, ifTrue: .label("mix")),
            Step(code: BPF.loadWord, k: BPF.network + 12, label: "source"),
            Step(code: BPF.jump, k: 0, ifTrue: .label("mix")),
        ]
    }

    /// A = the xor of the client's address's four words: the source, or the destination an ICMPv6 error quotes.
    private static func ipv6Steps(vip: IPAddress) -> [Step] {
        let quoted = BPF.network + 48
        var steps = [
            Step(code: BPF.jumpIfEqual, k: 0x86DD, ifFalse: .label("first")),
            Step(code: BPF.loadByte, k: BPF.network + 6),
            Step(code: BPF.jumpIfEqual, k: 58, ifFalse: .label("source")),  // ICMPv6 right after the header
            Step(code: BPF.loadByte, k: BPF.network + 40),
            Step(code: BPF.jumpIfEqual, k: 135, ifTrue: .label("first")),  // a neighbour solicitation
            Step(code: BPF.jumpIfAtLeast, k: 1, ifFalse: .label("source")),  // errors: types 1 to 4
            Step(code: BPF.jumpIfAbove, k: 4, ifTrue: .label("source")),
            Step(code: BPF.loadByte, k: quoted),
            Step(code: BPF.and, k: 0xF0),
            Step(code: BPF.jumpIfEqual, k: 0x60, ifFalse: .label("source")),
        ]
        for (index, word) in words(vip).enumerated() {
            steps.append(Step(code: BPF.loadWord, k: quoted + 8 + UInt32(index * 4)))
            steps.append(Step(code: BPF.jumpIfEqual, k: word, ifFalse: .label("source")))
        }
        steps += folded(from: quoted + 24)
        steps.append(Step(code: BPF.jump, k: 0, ifTrue: .label("mix")))
        var source = folded(from: BPF.network + 8)
        source[0].label = "source"
        return steps + source + [Step(code: BPF.jump, k: 0, ifTrue: .label("mix"))]
    }

    /// A = the xor of the four words at `offset`.
    private static func folded(from offset: UInt32) -> [Step] {
        var steps = [Step(code: BPF.loadWord, k: offset)]
        for index in 1..<4 {
            steps.append(Step(code: BPF.copyToX, k: 0))
            steps.append(Step(code: BPF.loadWord, k: offset + UInt32(index * 4)))
            steps.append(Step(code: BPF.xorX, k: 0))
        }
        return steps
    }

    private static func words(_ address: IPAddress) -> [UInt32] {
        [address.high >> 32, address.high, address.low >> 32, address.low].map { UInt32(truncatingIfNeeded: $0) }
    }
}
