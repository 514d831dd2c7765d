import Foundation
import Hashing
import MallocInterposerSwift
import TapEngine
import Testbed

/// `lbbench frames`: the engine's own Swift work per frame (parse + decide, no system call) over a million frames,
/// and the heap allocations it makes, counted by a malloc interposer.
struct FrameWorkBenchmark {
    var frames: Int
    var repetitions: Int

    struct Report: Codable {
        var frames: Int
        var nanosecondsPerFrameParse: Double
        var nanosecondsPerFrameParseAndDecide: Double
        /// The same, each frame parsed only when its turn comes (no lookahead, no prefetch): the reference.
        var nanosecondsPerFrameOneAtATime: Double
        /// Heap allocations during one pass of parse + decide over every frame (after a warm-up pass).
        var allocations: Int64
        var allocationsCounted: Bool
        var verdicts: [String: Int]
        /// The kernel delivery classifier over the first frames of the mix, in the kernel (needs root).
        var classifier: ClassifierTiming.Result?
        /// Why the classifier was not timed.
        var classifierNotTimed: String?
    }

    /// Frames of the mix the classifier is timed over, each run this many times per pass.
    static let classifierFrames = 2000
    static let classifierRepetitions: UInt32 = 1000

    /// A mix like a busy VIP: UDP and TCP from many clients (a third SYNs), ARP requests and malformed frames.
    func buildFrames() -> (data: [UInt8], offsets: [Int]) {
        var random = SeededGenerator(seed: 5)
        let vip = EngineBenchmark.vip
        let vmac = EngineBenchmark.virtualMACValue
        var data: [UInt8] = []
        var offsets = [0]
        for index in 0..<frames {
            let client = IPAddress(ipv4: 0xC612_8000 | UInt32.random(in: 0...0x7FFF, using: &random))
            let port = UInt16.random(in: 1024...65535, using: &random)
            var frame: [UInt8]
            switch index % 20 {
            case 0:
                frame = PacketBuilder.arp(
                    operation: 1, ethernetSource: 0x0200_0000_0001, ethernetDestination: 0xFFFF_FFFF_FFFF,
                    senderMAC: 0x0200_0000_0001, senderIP: client.ipv4Value!, targetMAC: 0, targetIP: vip.ipv4Value!)
            case 1:
                frame = PacketBuilder.udp(
                    destinationMAC: vmac, sourceMAC: 1, source: client, destination: vip,
                    sourcePort: port, destinationPort: 53, payload: [])
                frame[14] = 0x55  // malformed
            case 2...10:
                frame = PacketBuilder.udp(
                    destinationMAC: vmac, sourceMAC: 1, source: client, destination: vip,
                    sourcePort: port, destinationPort: 53, payload: Array(repeating: 0, count: 18))
            default:
                frame = PacketBuilder.tcp(
                    destinationMAC: vmac, sourceMAC: 1, source: client, destination: vip,
                    sourcePort: port, destinationPort: 443, flags: index % 3 == 0 ? 0x02 : 0x10)
            }
            data += frame
            offsets.append(data.count)
        }
        return (data, offsets)
    }

    func run() throws -> Report {
        let (data, offsets) = buildFrames()
        let table = try TableBuilder(seed: EngineBenchmark.seed).build(
            MembershipView(equalWeights: [NodeID(1)!, NodeID(2)!]), generation: 1)
        let state = EngineState(
            generation: 1, node: NodeID(1)!, seed: EngineBenchmark.seed, vip: EngineBenchmark.vip,
            virtualMAC: EngineBenchmark.virtualMACValue, table: table, isARPLeader: true)
        var flows = FlowTable(capacity: 1 << 20, idleTimeout: 300_000, closingTimeout: 10_000, seed: 3)
        var verdictCounts = [Int](repeating: 0, count: DropReason.allCases.count + 3)
        let clock = ContinuousClock()

        func parseOnly() -> Int {
            var parsed = 0
            data.withUnsafeBytes { bytes in
                for index in 0..<frames {
                    let frame = UnsafeRawBufferPointer(rebasing: bytes[offsets[index]..<offsets[index + 1]])
                    if case .frame = FrameParser.parse(frame) { parsed += 1 }
                }
            }
            return parsed
        }

        func parseAndDecide(lookahead: Bool = true) {
            data.withUnsafeBytes {
                Self.parseAndDecide(
                    $0, offsets: offsets, state: state, flows: &flows, counts: &verdictCounts, lookahead: lookahead)
            }
        }

        func perFrame(_ duration: Duration) -> Double {
            let (seconds, attoseconds) = duration.components
            return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(frames)
        }

        var parsed = 0
        let parseTimes = (0..<repetitions).map { _ in perFrame(clock.measure { parsed += parseOnly() }) }
        parseAndDecide()  // warm-up: the flow table fills
        // The two ways alternate, so that they share the machine's moments.
        var decideTimes: [Double] = []
        var oneAtATimeTimes: [Double] = []
        for _ in 0..<repetitions {
            decideTimes.append(perFrame(clock.measure { parseAndDecide() }))
            oneAtATimeTimes.append(perFrame(clock.measure { parseAndDecide(lookahead: false) }))
        }
        blackHole(UInt64(parsed))

        // One more pass with the interposer counting every malloc in the process.
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        parseAndDecide()
        MallocInterposerSwift.unhook()
        let allocations = MallocInterposerSwift.getStatistics().mallocCount

        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        var verdicts: [String: Int] = [:]
        for reason in DropReason.allCases where verdictCounts[reason.rawValue] > 0 {
            verdicts[reason.description] = verdictCounts[reason.rawValue] / (2 * repetitions + 2)
        }
        for (offset, name) in ["deliver", "forward", "answer"].enumerated() {
            verdicts[name] = verdictCounts[DropReason.allCases.count + offset] / (2 * repetitions + 2)
        }
        var report = Report(
            frames: frames, nanosecondsPerFrameParse: median(parseTimes),
            nanosecondsPerFrameParseAndDecide: median(decideTimes),
            nanosecondsPerFrameOneAtATime: median(oneAtATimeTimes),
            allocations: Int64(allocations),
            allocationsCounted: Self.interposerIsLoaded, verdicts: verdicts)
        let sample = (0..<min(frames, Self.classifierFrames)).map { Array(data[offsets[$0]..<offsets[$0 + 1]]) }
        do {
            report.classifier = try ClassifierTiming.measure(
                state: state, frames: sample, repetitions: Self.classifierRepetitions, passes: repetitions)
        } catch {
            report.classifierNotTimed = "\(error)"
        }
        return report
    }

    /// Parses and decides every frame, with `lookahead` the next frame parsed (and its flow's sets prefetched) before
    /// this one is decided, as the engine does (`EngineWorker`); counts the verdicts by `DropReason`, then deliver,
    /// forward and answer. A function of its own, so that the flow table and the counts are plain `inout`: captured
    /// by a closure, they would cost exclusivity checks at run time that are the harness's, not the decision's.
    static func parseAndDecide(
        _ bytes: UnsafeRawBufferPointer, offsets: [Int], state: EngineState, flows: inout FlowTable,
        counts: inout [Int],
        lookahead: Bool
    ) {
        func parse(_ index: Int) -> ParseOutcome {
            FrameParser.parse(UnsafeRawBufferPointer(rebasing: bytes[offsets[index]..<offsets[index + 1]]))
        }
        let frames = offsets.count - 1
        var next = parse(0)
        for index in 0..<frames {
            let outcome = lookahead ? next : parse(index)
            if lookahead && index + 1 < frames {
                next = parse(index + 1)
                flows.prefetch(for: next)
            }
            switch outcome {
            case .drop(let reason):
                counts[reason.rawValue] += 1
            case .frame(let parsed):
                switch Decider.decide(parsed, state: state, flows: &flows, now: 1) {
                case .drop(let reason): counts[reason.rawValue] += 1
                case .deliver: counts[DropReason.allCases.count] += 1
                case .forward: counts[DropReason.allCases.count + 1] += 1
                case .answer: counts[DropReason.allCases.count + 2] += 1
                }
            }
        }
    }

    /// Whether the malloc interposer was preloaded (a known allocation is counted).
    static var interposerIsLoaded: Bool {
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        let probe = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        MallocInterposerSwift.unhook()
        probe.deallocate()
        return MallocInterposerSwift.getStatistics().mallocCount > 0
    }
}
