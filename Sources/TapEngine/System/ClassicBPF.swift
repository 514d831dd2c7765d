import CKernel

/// Classic BPF, as the kernel takes it for socket filters and the fanout's program: the opcodes lbnode uses, and
/// programs written as steps whose jumps name a label (or the next steps to skip) instead of counting instructions.
enum ClassicBPF {
    // Opcodes (linux/filter.h).
    static let loadLength: UInt16 = 0x80  // BPF_LD | BPF_W | BPF_LEN
    static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
    static let loadHalf: UInt16 = 0x28  // BPF_LD | BPF_H | BPF_ABS
    static let loadByte: UInt16 = 0x30  // BPF_LD | BPF_B | BPF_ABS
    static let loadWordIndexed: UInt16 = 0x40  // BPF_LD | BPF_W | BPF_IND
    static let loadByteIndexed: UInt16 = 0x50  // BPF_LD | BPF_B | BPF_IND
    static let loadHeaderLength: UInt16 = 0xB1  // BPF_LDX | BPF_B | BPF_MSH: X = 4 * ([k] & 0xf)
    static let jumpIfEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
    static let jumpIfAtLeast: UInt16 = 0x35  // BPF_JMP | BPF_JGE | BPF_K
    static let jumpIfAbove: UInt16 = 0x25  // BPF_JMP | BPF_JGT | BPF_K
    static let jumpIfAnyBit: UInt16 = 0x45  // BPF_JMP | BPF_JSET | BPF_K
    static let jump: UInt16 = 0x05  // BPF_JMP | BPF_JA: the target goes in k
    static let and: UInt16 = 0x54  // BPF_ALU | BPF_AND | BPF_K
    static let multiply: UInt16 = 0x24  // BPF_ALU | BPF_MUL | BPF_K
    static let shiftRight: UInt16 = 0x74  // BPF_ALU | BPF_RSH | BPF_K
    static let xorX: UInt16 = 0xAC  // BPF_ALU | BPF_XOR | BPF_X
    static let copyToX: UInt16 = 0x07  // BPF_MISC | BPF_TAX
    static let returnA: UInt16 = 0x16  // BPF_RET | BPF_A
    static let returnValue: UInt16 = 0x06  // BPF_RET | BPF_K
    /// Offsets from the network header (`SKF_NET_OFF`), wherever the filter finds the packet's data.
    static let network = UInt32(bitPattern: -0x10_0000)
    /// The packet's protocol as the socket buffer holds it (`SKF_AD_OFF + SKF_AD_PROTOCOL`), for a half-word load.
    static let protocolField = UInt32(bitPattern: -0x1000)

    /// Where a jump goes: on to the next step, over `count` steps, or to the step with `label`.
    enum Target {
        case next
        case skip(Int)
        case label(String)
    }

    struct Step {
        var code: UInt16
        var k: UInt32
        var ifTrue: Target = .next
        var ifFalse: Target = .next
        var label: String? = nil
    }

    /// The program, its jumps resolved (a `jump` step's to k, the others' to jt and jf).
    static func assemble(_ steps: [Step]) -> [sock_filter] {
        var labels: [String: Int] = [:]
        for (index, step) in steps.enumerated() { if let label = step.label { labels[label] = index } }
        return steps.enumerated().map { index, step in
            func offset(_ target: Target) -> Int {
                switch target {
                case .next: 0
                case .skip(let count): count
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
