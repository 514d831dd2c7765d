/// One eBPF instruction, laid out as the kernel's `struct bpf_insn` (opcode, destination and source registers in
/// one byte, a signed 16-bit offset, a signed 32-bit immediate).
struct BPFInstruction: Equatable {
    var code: UInt8
    var registers: UInt8
    var offset: Int16
    var immediate: Int32
}

/// An eBPF register: r0 holds results, r1-r5 arguments (clobbered by calls), r6-r9 survive calls, r10 is the stack.
struct BPFRegister: Equatable {
    let number: UInt8
    static let r0 = BPFRegister(number: 0)
    static let r1 = BPFRegister(number: 1)
    static let r2 = BPFRegister(number: 2)
    static let r3 = BPFRegister(number: 3)
    static let r4 = BPFRegister(number: 4)
    static let r5 = BPFRegister(number: 5)
    static let r6 = BPFRegister(number: 6)
    static let r7 = BPFRegister(number: 7)
    static let r8 = BPFRegister(number: 8)
    static let r9 = BPFRegister(number: 9)
    static let frame = BPFRegister(number: 10)
}

/// Writes eBPF programs the way the kernel's `filter.h` macros do, with named labels for jumps (resolved when the
/// program is finished). Only what the bucket programs use: 64-bit ALU, loads and stores, atomic add, helper calls,
/// conditional jumps.
struct BPFAssembler {
    enum Operation: UInt8 {
        case add = 0x00, sub = 0x10, mul = 0x20, divide = 0x30, or = 0x40, and = 0x50, leftShift = 0x60, rightShift = 0x70
        case xor = 0xA0, move = 0xB0
    }

    enum Condition: UInt8 {
        case equal = 0x10, greater = 0x20, greaterOrEqual = 0x30, notEqual = 0x50, less = 0xA0, lessOrEqual = 0xB0
    }

    enum Size: UInt8 {
        case word = 0x00, half = 0x08, byte = 0x10, double = 0x18
    }

    /// A helper function the kernel offers socket filters and classifiers (`enum bpf_func_id`).
    enum Helper: Int32 {
        case mapLookupElement = 1
        case monotonicNanoseconds = 5
        case storeBytes = 9
        case redirect = 23
        case changeType = 32
        case loadBytesRelative = 68
        case skLookupUDP = 85
        case skRelease = 86
        case bootTimeNanoseconds = 125
    }

    struct Label: Hashable {
        let number: Int
    }

    private(set) var instructions: [BPFInstruction] = []
    private var places: [Label: Int] = [:]
    private var jumps: [(index: Int, label: Label)] = []
    private var labels = 0

    private static let alu64: UInt8 = 0x07, jump: UInt8 = 0x05, loadX: UInt8 = 0x01, storeX: UInt8 = 0x03
    private static let immediateSource: UInt8 = 0x00, registerSource: UInt8 = 0x08

    mutating func newLabel() -> Label {
        labels += 1
        return Label(number: labels)
    }

    /// The next instruction is `label`'s.
    mutating func place(_ label: Label) {
        precondition(places[label] == nil, "label placed twice")
        places[label] = instructions.count
    }

    private mutating func emit(
        _ code: UInt8, _ destination: BPFRegister = .r0, _ source: BPFRegister = .r0, offset: Int16 = 0,
        immediate: Int32 = 0
    ) {
        instructions.append(
            BPFInstruction(
                code: code, registers: destination.number | source.number << 4, offset: offset, immediate: immediate))
    }

    /// `destination = destination <operation> immediate` (64-bit; the immediate is sign-extended).
    mutating func alu(_ operation: Operation, _ destination: BPFRegister, _ immediate: Int32) {
        emit(Self.alu64 | operation.rawValue | Self.immediateSource, destination, immediate: immediate)
    }

    /// `destination = destination <operation> source` (64-bit).
    mutating func alu(_ operation: Operation, _ destination: BPFRegister, _ source: BPFRegister) {
        emit(Self.alu64 | operation.rawValue | Self.registerSource, destination, source)
    }

    /// `destination = value`, any 64-bit constant (two instruction slots).
    mutating func load(_ destination: BPFRegister, _ value: UInt64) {
        emit(0x18, destination, immediate: Int32(truncatingIfNeeded: value))
        emit(0, immediate: Int32(truncatingIfNeeded: value >> 32))
    }

    /// `destination = ` the map whose file descriptor is `map` (the kernel replaces it with the map's address).
    mutating func loadMap(_ destination: BPFRegister, fileDescriptor map: Int32) {
        let pseudoMapFD = BPFRegister(number: 1)
        emit(0x18, destination, pseudoMapFD, immediate: map)
        emit(0)
    }

    /// `destination = *(size *)(source + offset)`.
    mutating func load(_ size: Size, _ destination: BPFRegister, from source: BPFRegister, offset: Int16) {
        emit(Self.loadX | 0x60 | size.rawValue, destination, source, offset: offset)
    }

    /// `*(size *)(destination + offset) = source`.
    mutating func store(_ size: Size, _ source: BPFRegister, to destination: BPFRegister, offset: Int16) {
        emit(Self.storeX | 0x60 | size.rawValue, destination, source, offset: offset)
    }

    /// `*(u64 *)(destination + offset) += source`, atomically.
    mutating func atomicAdd(_ source: BPFRegister, to destination: BPFRegister, offset: Int16) {
        emit(Self.storeX | 0xC0 | Size.double.rawValue, destination, source, offset: offset, immediate: 0)
    }

    /// `register = ` its low 16 (32, 64) bits read as big-endian: network order to the host's.
    mutating func fromBigEndian(_ register: BPFRegister, bits: Int32) {
        let endianness: UInt8 = 0xD0, toBigEndian: UInt8 = 0x08, alu32: UInt8 = 0x04
        emit(alu32 | endianness | toBigEndian, register, immediate: bits)
    }

    mutating func call(_ helper: Helper) {
        emit(Self.jump | 0x80, immediate: helper.rawValue)
    }

    /// Returns r0.
    mutating func exit() {
        emit(Self.jump | 0x90)
    }

    mutating func jump(to label: Label) {
        jumps.append((instructions.count, label))
        emit(Self.jump)
    }

    /// Jumps to `label` when `register <condition> immediate` (unsigned, 64-bit).
    mutating func jump(if register: BPFRegister, _ condition: Condition, _ immediate: Int32, to label: Label) {
        jumps.append((instructions.count, label))
        emit(Self.jump | condition.rawValue | Self.immediateSource, register, immediate: immediate)
    }

    /// Jumps to `label` when `register <condition> other` (unsigned, 64-bit).
    mutating func jump(
        if register: BPFRegister, _ condition: Condition, _ other: BPFRegister, to label: Label
    ) {
        jumps.append((instructions.count, label))
        emit(Self.jump | condition.rawValue | Self.registerSource, register, other)
    }

    /// The program, with every jump pointing at its label.
    func finished() -> [BPFInstruction] {
        var program = instructions
        for (index, label) in jumps {
            guard let target = places[label] else { preconditionFailure("jump to a label never placed") }
            program[index].offset = Int16(target - index - 1)
        }
        return program
    }
}
