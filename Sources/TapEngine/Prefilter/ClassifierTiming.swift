import Glibc
import Hashing

/// The kernel delivery classifier's own time per frame, as the kernel measures it (`BPF_PROG_TEST_RUN` with repeats,
/// the system call left out), with and without its check of lbnode's heartbeat socket (docs/engine.md, "When lbnode
/// dies"): `lbbench frames`. Needs CAP_BPF. The heartbeat socket is bound on this namespace's loopback, where the
/// kernel runs the test; the lookup is the same hash lookup as on the farm's interface.
public struct ClassifierTiming {
    public struct Result: Codable, Sendable {
        /// Mean ns per frame, the median of the passes.
        public var nanosecondsWithHeartbeatCheck: Double
        public var nanosecondsWithoutHeartbeatCheck: Double
        /// Frames the classifier acted on (delivered, forwarded or dropped; the check runs for those), of all.
        public var actedOn: Int
        public var frames: Int
    }

    /// Times the classifier `state` gives over `frames`, `repetitions` runs of each frame per pass, the two programs
    /// alternating for `passes` passes.
    ///
    /// - Throws: `SystemCallError` when the kernel refuses the programs or the test runs (no CAP_BPF).
    public static func measure(
        state: EngineState, frames: [[UInt8]], repetitions: UInt32, passes: Int
    ) throws(SystemCallError) -> Result {
        let loopback = IPAddress(ipv4: 0x7F00_0001)
        let (socket, port) = try boundHeartbeatSocket(on: loopback)
        defer { withExtendedLifetime(socket) {} }
        let shape = BucketFilterShape(state: state, receiveMAC: state.virtualMAC)
        let plain = KernelDeliveryTarget(tapIndex: 1, interfaceIndex: 1, interfaceMAC: state.virtualMAC)
        var checked = plain
        checked.heartbeat = (loopback, port)
        let programs = try [checked, plain].map { target throws(SystemCallError) in
            let filter = try BucketPrefilter(shape: shape, deliveringTo: target)
            filter.pass(BucketPrefilter.buckets(for: state, tapMAC: state.virtualMAC))
            return filter
        }
        var times: [[Double]] = [[], []]
        var actedOn = 0
        for _ in 0..<passes {
            for (index, program) in programs.enumerated() {
                var total = 0.0
                var acted = 0
                for frame in frames {
                    guard let run = program.classifierTime(of: frame, repetitions: repetitions) else {
                        throw SystemCallError("bpf(BPF_PROG_TEST_RUN)", "run the kernel delivery classifier")
                    }
                    total += Double(run.nanoseconds)
                    if run.result != BucketFilterProgram.next { acted += 1 }
                }
                times[index].append(total / Double(frames.count))
                actedOn = acted
            }
        }
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        return Result(
            nanosecondsWithHeartbeatCheck: median(times[0]), nanosecondsWithoutHeartbeatCheck: median(times[1]),
            actedOn: actedOn, frames: frames.count)
    }

    /// A UDP socket on `address` at a free port, as lbnode's heartbeat socket.
    private static func boundHeartbeatSocket(on address: IPAddress) throws(SystemCallError)
        -> (DatagramSocket, UInt16)
    {
        var lastError: SystemCallError?
        for _ in 0..<20 {
            let port = UInt16.random(in: 40000...60000)
            do throws(SystemCallError) {
                return (try DatagramSocket(bindTo: address, port: port), port)
            } catch {
                guard error.errno == EADDRINUSE else { throw error }
                lastError = error
            }
        }
        throw lastError!
    }
}
