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

    private enum Target { case next, label(String) }
    private struct Step {
        var code: UInt16
        var k: UInt32
        var ifTrue: Target = .next
        var ifFalse: Target = .next
        var label: String?
    }

    // Classic BPF opcodes (linux/filter.h).
    private static let loadProtocol: UInt16 = 0x28  // BPF_LD | BPF_H | BPF_ABS, at SKF_AD_OFF + SKF_AD_PROTOCOL
    private static let loadByte: UInt16 = 0x30  // BPF_LD | BPF_B | BPF_ABS
    private static let loadHalf: UInt16 = 0x28  // BPF_LD | BPF_H | BPF_ABS
    private static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
    private static let loadByteIndexed: UInt16 = 0x50  // BPF_LD | BPF_B | BPF_IND
    private static let loadWordIndexed: UInt16 = 0x40  // BPF_LD | BPF_W | BPF_IND
    private static let loadHeaderLength: UInt16 = 0xB1  // BPF_LDX | BPF_B | BPF_MSH: X = 4 * ([k] & 0xf)
    private static let jumpIfEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
    private static let jumpIfAtLeast: UInt16 = 0x35  // BPF_JMP | BPF_JGE | BPF_K
    private static let jumpIfAbove: UInt16 = 0x25  // BPF_JMP | BPF_JGT | BPF_K
    private static let jumpIfAnyBit: UInt16 = 0x45  // BPF_JMP | BPF_JSET | BPF_K
    private static let jump: UInt16 = 0x05  // BPF_JMP | BPF_JA
    private static let and: UInt16 = 0x54  // BPF_ALU | BPF_AND | BPF_K
    private static let multiply: UInt16 = 0x24  // BPF_ALU | BPF_MUL | BPF_K
    private static let shiftRight: UInt16 = 0x74  // BPF_ALU | BPF_RSH | BPF_K
    private static let xorX: UInt16 = 0xAC  // BPF_ALU | BPF_XOR | BPF_X
    private static let copyToX: UInt16 = 0x07  // BPF_MISC | BPF_TAX
    private static let returnA: UInt16 = 0x16  // BPF_RET | BPF_A
    private static let returnValue: UInt16 = 0x06  // BPF_RET | BPF_K
    private static let network = UInt32(bitPattern: -0x10_0000)  // SKF_NET_OFF
    private static let protocolField = UInt32(bitPattern: -0x1000)  // SKF_AD_OFF + SKF_AD_PROTOCOL

    /// The program for a farm whose VIP is `vip` (the quoted packet of an ICMP error must come from it).
    static func instructions(vip: IPAddress) -> [sock_filter] {
        var steps = [Step(code: loadProtocol, k: protocolField)]
        steps += vip.isIPv4 ? ipv4Steps(vip: vip) : ipv6Steps(vip: vip)
        steps += [
            Step(code: multiply, k: 0x9E37_79B1, label: "mix"),
            Step(code: shiftRight, k: 16),
            Step(code: returnA, k: 0),
            Step(code: returnValue, k: 0, label: "first"),
        ]
        return assemble(steps)
    }

    /// A = the client's address: the source, or the destination an ICMP error quotes.
    private static func ipv4Steps(vip: IPAddress) -> [Step] {
        let quoted = network + 8  // the quoted IPv4 header, after the ICMP header (X: the outer header's length)
        return [
            Step(code: jumpIfEqual, k: 0x0800, ifFalse: .label("first")),
            Step(code: loadByte, k: network + 9),
            Step(code: jumpIfEqual, k: 1, ifFalse: .label("source")),  // ICMP
            Step(code: loadHalf, k: network + 6),
            Step(code: jumpIfAnyBit, k: 0x1FFF, ifTrue: .label("source")),  // a later fragment: no ICMP header
            Step(code: loadHeaderLength, k: network),
            Step(code: loadByteIndexed, k: network),  // the ICMP type
            Step(code: jumpIfEqual, k: 3, ifTrue: .label("quote")),
            Step(code: jumpIfEqual, k: 4, ifTrue: .label("quote")),
            Step(code: jumpIfEqual, k: 11, ifTrue: .label("quote")),
            Step(code: jumpIfEqual, k: 12, ifTrue: .label("quote"), ifFalse: .label("source")),
            Step(code: loadByteIndexed, k: quoted, label: "quote"),  // version 4, a header of 20 bytes or more
            Step(code: jumpIfAtLeast, k: 0x45, ifFalse: .label("source")),
            Step(code: jumpIfAbove, k: 0x4F, ifTrue: .label("source")),
            Step(code: loadWordIndexed, k: quoted + 12),
            Step(code: jumpIfEqual, k: vip.ipv4Value!, ifFalse: .label("source")),
            Step(code: loadWordIndexed, k: quoted + 16),
            Step(code: jump, k: 0, ifTrue: .label("mix")),
            Step(code: loadWord, k: network + 12, label: "source"),
            Step(code: jump, k: 0, ifTrue: .label("mix")),
        ]
    }

    /// A = the xor of the client's address's four words: the source, or the destination an ICMPv6 error quotes.
    private static func ipv6Steps(vip: IPAddress) -> [Step] {
        let quoted = network + 48
        var steps = [
            Step(code: jumpIfEqual, k: 0x86DD, ifFalse: .label("first")),
            Step(code: loadByte, k: network + 6),
            Step(code: jumpIfEqual, k: 58, ifFalse: .label("source")),  // ICMPv6 right after the header
            Step(code: loadByte, k: network + 40),
            Step(code: jumpIfEqual, k: 135, ifTrue: .label("first")),  // a neighbour solicitation
            Step(code: jumpIfAtLeast, k: 1, ifFalse: .label("source")),  // errors: types 1 to 4
            Step(code: jumpIfAbove, k: 4, ifTrue: .label("source")),
            Step(code: loadByte, k: quoted),
            Step(code: and, k: 0xF0),
            Step(code: jumpIfEqual, k: 0x60, ifFalse: .label("source")),
        ]
        for (index, word) in words(vip).enumerated() {
            steps.append(Step(code: loadWord, k: quoted + 8 + UInt32(index * 4)))
            steps.append(Step(code: jumpIfEqual, k: word, ifFalse: .label("source")))
        }
        steps += folded(from: quoted + 24)
        steps.append(Step(code: jump, k: 0, ifTrue: .label("mix")))
        var source = folded(from: network + 8)
        source[0].label = "source"
        return steps + source + [Step(code: jump, k: 0, ifTrue: .label("mix"))]
    }

    /// A = the xor of the four words at `offset`.
    private static func folded(from offset: UInt32) -> [Step] {
        var steps = [Step(code: loadWord, k: offset)]
        for index in 1..<4 {
            steps.append(Step(code: copyToX, k: 0))
            steps.append(Step(code: loadWord, k: offset + UInt32(index * 4)))
            steps.append(Step(code: xorX, k: 0))
        }
        return steps
    }

    private static func words(_ address: IPAddress) -> [UInt32] {
        [address.high >> 32, address.high, address.low >> 32, address.low].map { UInt32(truncatingIfNeeded: $0) }
    }

    /// Resolves labels to jump offsets (a `jump`'s goes in k).
    private static func assemble(_ steps: [Step]) -> [sock_filter] {
        var labels: [String: Int] = [:]
        for (index, step) in steps.enumerated() { if let label = step.label { labels[label] = index } }
        return steps.enumerated().map { index, step in
            func offset(_ target: Target) -> Int {
                switch target {
                case .next: 0
                case .label(let name): labels[name]! - index - 1
                }
            }
            if step.code == jump {
                return sock_filter(code: step.code, jt: 0, jf: 0, k: UInt32(offset(step.ifTrue)))
            }
            return sock_filter(
                code: step.code, jt: UInt8(offset(step.ifTrue)), jf: UInt8(offset(step.ifFalse)), k: step.k)
        }
    }
}
