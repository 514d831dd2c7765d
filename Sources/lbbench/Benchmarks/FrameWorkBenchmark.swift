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
        /// Heap allocations during one pass of parse + decide over every frame (after a warm-up pass).
        var allocations: Int64
        var allocationsCounted: Bool
        var verdicts: [String: Int]
    }

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

        func parseAndDecide() {
            data.withUnsafeBytes { bytes in
                for index in 0..<frames {
                    let frame = UnsafeRawBufferPointer(rebasing: bytes[offsets[index]..<offsets[index + 1]])
                    switch FrameParser.parse(frame) {
                    case .drop(let reason):
                        verdictCounts[reason.rawValue] += 1
                    case .frame(let parsed):
                        switch Decider.decide(parsed, state: state, flows: &flows, now: 1) {
                        case .drop(let reason): verdictCounts[reason.rawValue] += 1
                        case .deliver: verdictCounts[DropReason.allCases.count] += 1
                        case .forward: verdictCounts[DropReason.allCases.count + 1] += 1
                        case .answer: verdictCounts[DropReason.allCases.count + 2] += 1
                        }
                    }
                }
            }
        }

        func perFrame(_ duration: Duration) -> Double {
            let (seconds, attoseconds) = duration.components
            return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(frames)
        }

        var parsed = 0
        let parseTimes = (0..<repetitions).map { _ in perFrame(clock.measure { parsed += parseOnly() }) }
        parseAndDecide()  // warm-up: the flow table fills
        let decideTimes = (0..<repetitions).map { _ in perFrame(clock.measure { parseAndDecide() }) }
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
            verdicts[reason.description] = verdictCounts[reason.rawValue] / (repetitions + 2)
        }
        for (offset, name) in ["deliver", "forward", "answer"].enumerated() {
            verdicts[name] = verdictCounts[DropReason.allCases.count + offset] / (repetitions + 2)
        }
        return Report(
            frames: frames, nanosecondsPerFrameParse: median(parseTimes),
            nanosecondsPerFrameParseAndDecide: median(decideTimes), allocations: Int64(allocations),
            allocationsCounted: Self.interposerIsLoaded, verdicts: verdicts)
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
