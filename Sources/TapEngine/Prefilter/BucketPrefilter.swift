import CBPF
import CKernel
import Glibc
import Hashing
import Synchronization

/// The bucket programs in the kernel: a `BucketFilterProgram` loaded as a socket filter, the same loaded as a
/// classifier when the kernel delivers (`deliveringTo`), and their map, which this process maps into memory so that
/// a new state's buckets are plain stores (no system call per bucket, none per frame). The kernel refuses the filter
/// without CAP_BPF or on a kernel too old for mappable maps (5.5); the ring then keeps the classic filter and every
/// frame for the VIP.
///
/// - Warning: after `init`, only the engine's control side uses it, under its lock.
final class BucketPrefilter {
    let shape: BucketFilterShape
    private let map: Int32
    private let program: Int32
    /// The classifier, when the kernel delivers steady buckets itself.
    let classifier: Int32?
    private let value: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let bitBytes: Int
    /// What the map holds (only `pass` writes it; a new map sends nothing to the ring and has no action).
    private var written: Buckets

    /// Creates the map and loads the programs (the verifier checks them here).
    ///
    /// - Throws: `SystemCallError`, with the verifier's last words when it refused a program.
    init(shape: BucketFilterShape, deliveringTo target: KernelDeliveryTarget? = nil) throws(SystemCallError) {
        self.shape = shape
        bitBytes = BucketFilterProgram.bitBytes(shape.bucketCount)
        written = .none(shape.bucketCount)
        let valueBytes = BucketFilterProgram.valueBytes(shape.bucketCount)
        map = vipfarm_bpf_map_create(UInt32(valueBytes))
        guard map >= 0 else {
            throw SystemCallError("bpf(BPF_MAP_CREATE)", "create the prefilter's map of \(shape.bucketCount) buckets")
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        mappedBytes = (valueBytes + page - 1) / page * page
        let address = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_SHARED, map, 0)
        guard let address, address != MAP_FAILED else {
            let error = SystemCallError("mmap", "map the prefilter's map into memory")
            close(map)
            throw error
        }
        value = address
        value.storeBytes(of: UInt64.max, toByteOffset: Int(BucketFilterProgram.leaseOffset), as: UInt64.self)
        let map = map
        var loaded: [Int32] = []
        do throws(SystemCallError) {
            loaded.append(try Self.load(shape, map: map, kind: .socketFilter, what: "the prefilter"))
            if let target {
                loaded.append(
                    try Self.load(shape, map: map, kind: .classifier(target), what: "the kernel delivery classifier"))
            }
        } catch {
            for program in loaded { close(program) }
            munmap(value, mappedBytes)
            close(map)
            throw error
        }
        program = loaded[0]
        classifier = loaded.count > 1 ? loaded[1] : nil
    }

    private static func load(
        _ shape: BucketFilterShape, map: Int32, kind: BucketFilterProgram.Kind, what: String
    ) throws(SystemCallError) -> Int32 {
        let instructions = BucketFilterProgram.instructions(for: shape, map: map, kind: kind)
        var log = [CChar](repeating: 0, count: 1 << 16)
        let program = instructions.withUnsafeBytes { code in
            kind.isSocketFilter
                ? vipfarm_bpf_socket_filter_load(code.baseAddress, UInt32(instructions.count), &log, UInt32(log.count))
                : vipfarm_bpf_classifier_load(code.baseAddress, UInt32(instructions.count), &log, UInt32(log.count))
        }
        guard program >= 0 else {
            let saved = errno
            let said = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let last = said.split(separator: "\n").suffix(2).joined(separator: "; ")
            throw SystemCallError(
                "bpf(BPF_PROG_LOAD)",
                "load \(what) (\(instructions.count) instructions)" + (last.isEmpty ? "" : ": \(last)"),
                errno: saved)
        }
        return program
    }

    deinit {
        munmap(value, mappedBytes)
        if let classifier { close(classifier) }
        close(program)
        close(map)
    }

    /// Replaces `socket`'s filter with this one, atomically: every frame meets either the old filter or this one.
    func attach(to socket: Int32) throws(SystemCallError) {
        var descriptor = program
        guard setsockopt(socket, SOL_SOCKET, SO_ATTACH_BPF, &descriptor, socklen_t(MemoryLayout<Int32>.size)) == 0
        else { throw SystemCallError("setsockopt(SO_ATTACH_BPF)", "attach the prefilter") }
    }

    /// From the next frame on: the ring gets the TCP and UDP frames of the buckets whose flag is set, and the
    /// classifier takes those of the buckets with an action. The map goes through `Buckets.steps(to:)`, each step
    /// written before the next: no TCP frame is lost on the way, and no datagram is taken twice.
    func pass(_ buckets: Buckets) {
        precondition(
            buckets.tcp.count == shape.bucketCount && buckets.udp.count == shape.bucketCount
                && buckets.actions.count == shape.bucketCount)
        let bits = value + Int(BucketFilterProgram.bitsOffset)
        let toTheKernel = written.handsDatagramsToTheKernel(buckets)
        for (index, step) in written.steps(to: buckets).enumerated() {
            // A step changes either the bits or the actions: storing the others again changes nothing.
            store(step.tcp, at: bits)
            store(step.udp, at: bits + bitBytes)
            store(step.actions, over: written.actions)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            written = step
            // The first step took out of the ring the datagrams the classifier is about to take. One the ring took
            // just before may not have met the classifier yet (the ring's packet socket sees a frame first, in the
            // same softirq): give it those microseconds before its bucket gets an action, or both could take it.
            if index == 0 && toTheKernel { usleep(100) }
        }
    }

    /// Packs `flags` into the bit array at `bits`, one bit per bucket. Index loops over buffers: a swap runs on the
    /// heartbeat loop, in debug builds too.
    private func store(_ flags: [Bool], at bits: UnsafeMutableRawPointer) {
        flags.withUnsafeBufferPointer { flags in
            var byte = 0
            while byte < bitBytes {
                var packed: UInt8 = 0
                var bucket = byte * 8
                while bucket < min(byte * 8 + 8, flags.count) {
                    if flags[bucket] { packed |= 1 << (bucket - byte * 8) }
                    bucket += 1
                }
                bits.storeBytes(of: packed, toByteOffset: byte, as: UInt8.self)
                byte += 1
            }
        }
    }

    /// Stores the actions that differ from `old`, each in one 8-byte store (the classifier reads a bucket's once).
    private func store(_ actions: [UInt64], over old: [UInt64]) {
        let base = value + BucketFilterProgram.actionsOffset(shape.bucketCount)
        actions.withUnsafeBufferPointer { new in
            old.withUnsafeBufferPointer { old in
                var bucket = 0
                while bucket < new.count {
                    if new[bucket] != old[bucket] {
                        base.storeBytes(of: new[bucket], toByteOffset: 8 * bucket, as: UInt64.self)
                    }
                    bucket += 1
                }
            }
        }
    }

    /// Per bucket, the classifier's action as the map holds it now (`BucketFilterProgram.action`; 0: none).
    var actions: [UInt64] {
        let actions = value + BucketFilterProgram.actionsOffset(shape.bucketCount)
        return [UInt64](unsafeUninitializedCapacity: shape.bucketCount) { copy, initialized in
            UnsafeMutableRawBufferPointer(copy).copyMemory(
                from: UnsafeRawBufferPointer(start: actions, count: 8 * shape.bucketCount))
            initialized = shape.bucketCount
        }
    }

    /// The classifier acts until `bootTime` (CLOCK_BOOTTIME, ns), and not after: the engine's lease.
    func leaseRuns(until bootTime: UInt64) {
        value.storeBytes(of: bootTime, toByteOffset: Int(BucketFilterProgram.leaseOffset), as: UInt64.self)
    }

    /// Per protocol, per bucket: the node needs its frames in the ring; and per bucket, what the classifier does with
    /// its TCP and UDP frames (`BucketFilterProgram.action`; 0: nothing, the ring has them).
    struct Buckets: Equatable {
        var tcp: [Bool]
        var udp: [Bool]
        var actions: [UInt64]

        static func all(_ count: Int) -> Buckets {
            Buckets(
                tcp: Array(repeating: true, count: count), udp: Array(repeating: true, count: count),
                actions: Array(repeating: 0, count: count))
        }

        /// Nothing to the ring, no action: a new map.
        static func none(_ count: Int) -> Buckets {
            Buckets(
                tcp: Array(repeating: false, count: count), udp: Array(repeating: false, count: count),
                actions: Array(repeating: 0, count: count))
        }

        /// The map's contents on the way from these buckets to `new`, in the order they are written. Each step
        /// changes the bits or the actions, not both; the first, the bits. While the actions change, the ring takes
        /// the TCP frames of the old buckets and the new (no frame is lost; one may be taken by both, which TCP takes
        /// as a duplicate segment), and the UDP frames only of the buckets it keeps: a datagram of a bucket moving
        /// between the ring and the kernel (a node becomes or stops being the director) may meet neither for a
        /// moment, and is lost as a datagram may be, but never both, which an application would answer twice.
        func steps(to new: Buckets) -> [Buckets] {
            var bits = self
            bits.tcp = Self.merged(tcp, new.tcp, union: true)
            bits.udp = Self.merged(udp, new.udp, union: false)
            var adding = bits
            adding.actions = actions.withUnsafeBufferPointer { old in
                new.actions.withUnsafeBufferPointer { new in
                    [UInt64](unsafeUninitializedCapacity: old.count) { adding, initialized in
                        var bucket = 0
                        while bucket < old.count {
                            adding[bucket] = new[bucket] != 0 ? new[bucket] : old[bucket]
                            bucket += 1
                        }
                        initialized = old.count
                    }
                }
            }
            var actions = bits
            actions.actions = new.actions
            return [bits, adding, actions, new]
        }

        /// Whether going to `new` gives the classifier the datagrams of a bucket the ring takes now.
        func handsDatagramsToTheKernel(_ new: Buckets) -> Bool {
            udp.withUnsafeBufferPointer { udp in
                new.actions.withUnsafeBufferPointer { actions in
                    var bucket = 0
                    while bucket < udp.count {
                        if udp[bucket] && BucketFilterProgram.udpKind(actions[bucket]) != 0 { return true }
                        bucket += 1
                    }
                    return false
                }
            }
        }

        /// Per bucket, both flags (`union`: either). Index loops over buffers: a swap runs on the heartbeat loop, in
        /// debug builds too.
        private static func merged(_ a: [Bool], _ b: [Bool], union: Bool) -> [Bool] {
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    [Bool](unsafeUninitializedCapacity: a.count) { merged, initialized in
                        var bucket = 0
                        while bucket < a.count {
                            merged[bucket] = union ? a[bucket] || b[bucket] : a[bucket] && b[bucket]
                            bucket += 1
                        }
                        initialized = a.count
                    }
                }
            }
        }
    }

    /// What the programs counted since they were loaded: frames whose bucket the socket filter passed and dropped,
    /// pings beyond its echo budget, and frames the classifier delivered, forwarded and dropped.
    var counts:
        (
            passed: UInt64, dropped: UInt64, echoDropped: UInt64, delivered: UInt64, forwarded: UInt64,
            classifierDropped: UInt64
        )
    {
        func counter(_ offset: Int16) -> UInt64 { value.load(fromByteOffset: Int(offset), as: UInt64.self) }
        return (
            counter(BucketFilterProgram.passedOffset), counter(BucketFilterProgram.droppedOffset),
            counter(BucketFilterProgram.echoDroppedOffset), counter(BucketFilterProgram.deliveredOffset),
            counter(BucketFilterProgram.forwardedOffset), counter(BucketFilterProgram.classifierDroppedOffset)
        )
    }

    /// The buckets a node needs to see in `state`: in flood mode the ones it owns, and for TCP those it released in
    /// a handover too (it still serves the connections it has there: its flow table decides); in the other modes
    /// every bucket (a director forwards them all, a relay target sees only what was relayed to it). With `tapMAC`
    /// (the kernel delivers), the TCP frames of buckets in steady ownership and, but in relay delivery, every UDP
    /// frame are the classifier's, and out of the ring (`KernelDeliveryPlan`).
    static func buckets(for state: EngineState, tapMAC: UInt64? = nil) -> Buckets {
        let count = state.table.count
        var buckets = Buckets.all(count)
        if let tapMAC { buckets.actions = KernelDeliveryPlan.actions(for: state, tapMAC: tapMAC) }
        let seesEveryBucket = state.role.seesEveryBucket
        let node = state.node.rawValue
        let owners = state.table.rawOwners
        let released = state.releasedBuckets
        // Index loops over buffers: a swap runs on the heartbeat loop, in debug builds too.
        buckets.tcp.withUnsafeMutableBufferPointer { tcp in
            buckets.udp.withUnsafeMutableBufferPointer { udp in
                buckets.actions.withUnsafeBufferPointer { actions in
                    var bucket = 0
                    while bucket < count {
                        if !seesEveryBucket {
                            udp[bucket] = owners[bucket] == node
                            tcp[bucket] = udp[bucket] || released[bucket]
                        }
                        if BucketFilterProgram.tcpKind(actions[bucket]) != 0 { tcp[bucket] = false }
                        if BucketFilterProgram.udpKind(actions[bucket]) != 0 { udp[bucket] = false }
                        bucket += 1
                    }
                }
            }
        }
        return buckets
    }

    /// What the socket filter returns for `frame` (Ethernet header first): 0 dropped, else the bytes kept. The kernel
    /// runs it as it would for the socket (`BPF_PROG_TEST_RUN`); nil if it could not.
    func verdict(of frame: [UInt8]) -> UInt32? {
        let result = frame.withUnsafeBytes {
            vipfarm_bpf_test_run(program, $0.baseAddress, UInt32($0.count), nil, 0, 1, nil)
        }
        return result < 0 ? nil : UInt32(result)
    }

    /// What the classifier returns for `frame`, and the kernel's mean time per run over `repetitions` runs; nil if it
    /// could not run.
    func classifierTime(of frame: [UInt8], repetitions: UInt32) -> (result: Int32, nanoseconds: UInt32)? {
        guard let classifier else { return nil }
        var nanoseconds: UInt32 = 0
        let result = frame.withUnsafeBytes {
            vipfarm_bpf_test_run(classifier, $0.baseAddress, UInt32($0.count), nil, 0, repetitions, &nanoseconds)
        }
        return result < 0 ? nil : (Int32(truncatingIfNeeded: result), nanoseconds)
    }

    /// What the classifier returns for `frame`, and the frame as it left it; nil if it could not run.
    func classifierVerdict(of frame: [UInt8]) -> (result: Int32, frame: [UInt8])? {
        guard let classifier else { return nil }
        var out = [UInt8](repeating: 0, count: frame.count + 64)
        let result = frame.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                vipfarm_bpf_test_run(
                    classifier, input.baseAddress, UInt32(input.count), output.baseAddress, UInt32(output.count), 1,
                    nil)
            }
        }
        guard result >= 0 else { return nil }
        return (Int32(truncatingIfNeeded: result), Array(out.prefix(frame.count)))
    }
}
