import CBPF
import CKernel
import Glibc
import Hashing

/// The bucket prefilter in the kernel: a `BucketFilterProgram` loaded as a socket filter, and its map, which this
/// process maps into memory so that a new state's bucket bits are plain stores (no system call per bucket, none per
/// frame). The kernel refuses it without CAP_BPF or on a kernel too old for mappable maps (5.5); the ring then keeps
/// the classic filter and every frame for the VIP.
///
/// - Warning: after `init`, only the engine thread uses it.
final class BucketPrefilter {
    let shape: BucketFilterShape
    private let map: Int32
    private let program: Int32
    private let value: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let bitBytes: Int

    /// Creates the map and loads the program (the verifier checks it here).
    ///
    /// - Throws: `SystemCallError`, with the verifier's last words when it refused the program.
    init(shape: BucketFilterShape) throws(SystemCallError) {
        self.shape = shape
        bitBytes = BucketFilterProgram.bitBytes(shape.bucketCount)
        let valueBytes = Int(BucketFilterProgram.bitsOffset) + 2 * bitBytes
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
        let instructions = BucketFilterProgram.instructions(for: shape, map: map)
        var log = [CChar](repeating: 0, count: 1 << 16)
        program = instructions.withUnsafeBytes { code in
            vipfarm_bpf_socket_filter_load(
                code.baseAddress, UInt32(instructions.count), &log,
                UInt32(log.count))
        }
        guard program >= 0 else {
            let saved = errno
            let said = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let last = said.split(separator: "\n").suffix(2).joined(separator: "; ")
            munmap(value, mappedBytes)
            close(map)
            throw SystemCallError(
                "bpf(BPF_PROG_LOAD)",
                "load the prefilter (\(instructions.count) instructions)" + (last.isEmpty ? "" : ": \(last)"),
                errno: saved)
        }
    }

    deinit {
        munmap(value, mappedBytes)
        close(program)
        close(map)
    }

    /// Replaces `socket`'s filter with this one, atomically: every frame meets either the old filter or this one.
    func attach(to socket: Int32) throws(SystemCallError) {
        var descriptor = program
        guard setsockopt(socket, SOL_SOCKET, SO_ATTACH_BPF, &descriptor, socklen_t(MemoryLayout<Int32>.size)) == 0
        else { throw SystemCallError("setsockopt(SO_ATTACH_BPF)", "attach the prefilter") }
    }

    /// Lets through the TCP and UDP frames of the buckets whose flag is set (and only counts them), from the next
    /// frame on.
    func pass(_ buckets: Buckets) {
        precondition(buckets.tcp.count == shape.bucketCount && buckets.udp.count == shape.bucketCount)
        for (index, flags) in [buckets.tcp, buckets.udp].enumerated() {
            let bits = value + Int(BucketFilterProgram.bitsOffset) + index * bitBytes
            for byte in 0..<bitBytes {
                var packed: UInt8 = 0
                for bit in 0..<8 where byte * 8 + bit < flags.count && flags[byte * 8 + bit] { packed |= 1 << bit }
                bits.storeBytes(of: packed, toByteOffset: byte, as: UInt8.self)
            }
        }
    }

    /// Per protocol, per bucket: the node needs its frames.
    struct Buckets: Equatable {
        var tcp: [Bool]
        var udp: [Bool]

        static func all(_ count: Int) -> Buckets {
            Buckets(tcp: Array(repeating: true, count: count), udp: Array(repeating: true, count: count))
        }
    }

    /// Frames whose bucket was passed, and dropped, since the program was loaded.
    var counts: (passed: UInt64, dropped: UInt64) {
        (
            value.load(fromByteOffset: Int(BucketFilterProgram.passedOffset), as: UInt64.self),
            value.load(fromByteOffset: Int(BucketFilterProgram.droppedOffset), as: UInt64.self)
        )
    }

    /// The buckets a node needs to see in `state`: in flood mode the ones it owns, and for TCP those it released in
    /// a handover too (it still serves the connections it has there: its flow table decides); in the other modes
    /// every bucket (a director forwards them all, a relay target sees only what was relayed to it).
    static func buckets(for state: EngineState) -> Buckets {
        guard state.delivery == .flood else { return .all(state.table.count) }
        let owned = (0..<state.table.count).map { state.table.owner(ofBucket: $0) == state.node }
        return Buckets(tcp: zip(owned, state.releasedBuckets).map { $0 || $1 }, udp: owned)
    }

    /// What the program returns for `frame` (Ethernet header first): 0 dropped, else the bytes kept. The kernel runs
    /// it as it would for the socket (`BPF_PROG_TEST_RUN`); nil if it could not.
    func verdict(of frame: [UInt8]) -> UInt32? {
        let result = frame.withUnsafeBytes { vipfarm_bpf_test_run(program, $0.baseAddress, UInt32($0.count)) }
        return result < 0 ? nil : UInt32(result)
    }
}
