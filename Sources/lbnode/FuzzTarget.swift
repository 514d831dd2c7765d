import Crypto
import Foundation
import Hashing
import TapEngine

/// What `make fuzz` feeds with random inputs: every input goes through the same code as a frame from the wire, a
/// datagram on the heartbeat port, or a configuration file. A crash is a bug; the inputs that once crashed are kept
/// in Tests/lbnodeTests/FuzzInputs and replayed by the tests.
enum FuzzTarget: String, CaseIterable {
    /// The frame parser, then the decider with a flood state (owning a third, mid-handover) and a director's state.
    case frames
    /// The heartbeat gate (cheap checks, then the HMAC) and the decoder.
    case heartbeat
    /// The configuration loader.
    case config

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .frames:
            guard case .frame(let frame) = FrameParser.parse(bytes, wholeLength: nil) else { return }
            for state in Self.states {
                _ = Decider.decide(frame, state: state, flows: &Self.flows, now: 1000)
            }
        case .heartbeat:
            var gate = Self.gate
            _ = gate.admit(bytes, from: Self.peerAddress, now: 5)
            _ = Heartbeat.decode(Array(bytes), keys: [Self.key])
        case .config:
            _ = try? FarmConfig.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz")
        }
    }

    nonisolated(unsafe) private static var flows = FlowTable(
        capacity: 1024, idleTimeout: 60_000, closingTimeout: 1000, unconfirmedTimeout: 1000, seed: 1)

    private static let states: [EngineState] = {
        let seed = FarmSeed(farmName: "fuzz")
        let view = try! MembershipView([Member(id: NodeID(1)!, weight: 100), Member(id: NodeID(2)!, weight: 100)])
        let table = try! TableBuilder(seed: seed, bucketCount: 256, algorithm: .balanced).build(view, generation: 1)
        let vip = IPAddress("198.18.0.100")!
        var flood = EngineState(
            generation: 1, node: NodeID(1)!, seed: seed, vip: vip, virtualMAC: 0x0200_0000_0064, table: table,
            rules: [PortRule(proto: .udp, ports: [53...53], mode: .single(owner: NodeID(2)!))],
            delivery: .flood, isARPLeader: true, handoverBuckets: (0..<256).map { $0 % 3 == 0 },
            releasedBuckets: (0..<256).map { $0 % 5 == 0 })
        flood.hold(flood.handoverBuckets)
        let director = EngineState(
            generation: 2, node: NodeID(1)!, seed: seed, vip: vip, virtualMAC: 0x0200_0000_0064, table: table,
            delivery: .directed, isARPLeader: true, isDirector: true,
            previousOwners: (0..<256).map { $0 % 4 == 0 ? 2 : 0 }, nodeMACs: [1: 0x0200_0000_0011, 2: 0x0200_0000_0012])
        return [flood, director]
    }()

    nonisolated(unsafe) private static let key = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))
    private static let peerAddress = IPAddress("198.18.0.12")!
    nonisolated(unsafe) private static let gate = HeartbeatGate(
        keys: [key], me: NodeID(1)!, peers: [NodeID(2)!: peerAddress, NodeID(3)!: IPAddress("198.18.0.13")!],
        restartAfter: 30, incarnation: 1, interval: 10)
}

#if FUZZING
/// The fuzzing build's entry (`make fuzz` builds lbnode with `-sanitize=fuzzer -DFUZZING`): SwiftPM points an
/// executable's `main` at `lbnode_main`, which hands over to libFuzzer's driver; `VIPFARM_FUZZ` names the target.
@_cdecl("lbnode_main")
func fuzzingMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    guard let target = FuzzTarget(rawValue: ProcessInfo.processInfo.environment["VIPFARM_FUZZ"] ?? "") else {
        printError("lbnode (fuzzing build): set VIPFARM_FUZZ to one of frames, heartbeat, config")
        return 2
    }
    fuzzTarget = target
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        fuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}

nonisolated(unsafe) private var fuzzTarget = FuzzTarget.frames

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif
