import Foundation
import Hashing
import Synchronization
import Testing

@testable import TapEngine

/// A port that hands the engine scripted batches (frames with their offload headers, as a ring with
/// `PACKET_VNET_HDR` holds them) and records what the engine sends.
final class ScriptedPort: PacketPort, @unchecked Sendable {
    struct Batch {
        var frames: [(bytes: [UInt8], truncated: Bool, vlan: UInt16?)]
        /// Frames (by index) of which the ring holds only the first `headBytes`, the whole frame waiting on the
        /// socket, as for a frame longer than a ring slot.
        var headsOnly: Set<Int> = []
        /// After the first frame the port signals `entered` and waits for `release`: an engine thread held in the
        /// middle of a batch.
        var hold: (entered: DispatchSemaphore, release: DispatchSemaphore)? = nil
    }

    static let headBytes = 1600

    private let script: Mutex<[Batch]>
    private(set) var forwarded: [(frame: [UInt8], mac: UInt64)] = []
    private(set) var sent: [[UInt8]] = []
    private var queuedForwards = 0

    init(_ blocks: [Batch]) { script = Mutex(blocks) }

    func add(_ block: Batch) { script.withLock { $0.append(block) } }

    func wake() {}  // an empty script waits only a millisecond

    var batchesLeft: Int { script.withLock { $0.count } }

    func receive(_ handle: (ReceivedFrame, _ next: ReceivedFrame?) -> Void, endOfBatch: () -> Void) -> Int {
        guard let block = script.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else {
            Thread.sleep(forTimeInterval: 0.001)  // an empty ring: the block timeout
            return 0
        }
        // The block's frames side by side in one buffer, as in a ring: each stays in place until the batch ends, so
        // that a frame handed over as the next one is where it was when its turn comes.
        let starts = block.frames.reduce(into: [0]) { $0.append($0.last! + $1.bytes.count) }
        let ring = UnsafeMutableRawBufferPointer.allocate(byteCount: max(starts.last!, 1), alignment: 16)
        defer { ring.deallocate() }
        for (index, frame) in block.frames.enumerated() {
            UnsafeMutableRawBufferPointer(rebasing: ring[starts[index]..<starts[index + 1]]).copyBytes(
                from: frame.bytes)
        }
        func bytes(_ index: Int, count: Int? = nil) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(
                start: ring.baseAddress! + starts[index], count: count ?? block.frames[index].bytes.count)
        }
        func whole(_ index: Int) -> ReceivedFrame? {
            guard index < block.frames.count, !block.headsOnly.contains(index) else { return nil }
            let frame = block.frames[index]
            return ReceivedFrame(withOffloadHeader: bytes(index), isTruncated: frame.truncated, vlanTag: frame.vlan)
        }
        for (index, frame) in block.frames.enumerated() {
            if let received = whole(index) {
                handle(received, whole(index + 1))
            } else {
                waiting = frame.bytes
                handle(
                    ReceivedFrame(
                        withOffloadHeader: bytes(index, count: Self.headBytes), vlanTag: frame.vlan,
                        wholeLength: frame.bytes.count - OffloadHeader.size), nil)
                if waiting != nil { discardedWholes += 1 }
                waiting = nil
            }
            if index == 0, let hold = block.hold {
                hold.entered.signal()
                hold.release.wait()
            }
        }
        endOfBatch()
        return block.frames.count
    }

    private var waiting: [UInt8]?
    private var takenWhole: [UInt8] = []
    private(set) var discardedWholes = 0

    func takeWhole() -> ReceivedFrame? {
        guard let whole = waiting else { return nil }
        waiting = nil
        takenWhole = whole
        return takenWhole.withUnsafeBytes { ReceivedFrame(withOffloadHeader: $0) }  // kept alive by takenWhole
    }

    func forward(_ frame: ReceivedFrame, to mac: UInt64) -> (sent: Int, failed: Int) {
        forwarded.append((Array(frame.withOffloadHeader), mac))
        queuedForwards += 1
        return (0, 0)
    }

    func flushForwards() -> (sent: Int, failed: Int) {
        defer { queuedForwards = 0 }
        return (queuedForwards, 0)
    }

    func send(_ frame: UnsafeRawBufferPointer) -> Bool {
        sent.append(Array(frame))
        return true
    }

    func kernelDrops() -> UInt64 { 0 }
}

/// A TAP that records every frame written, and when the writes were completed.
final class RecordingSink: FrameSink {
    private(set) var written: [[UInt8]] = []
    private(set) var flushes = 0
    private var queued: UInt32 = 0

    func queue(_ frame: UnsafeRawBufferPointer) -> (written: UInt32, failed: UInt32) {
        written.append(Array(frame))
        queued += 1
        return (0, 0)
    }

    func flush() -> (written: UInt32, failed: UInt32) {
        flushes += 1
        defer { queued = 0 }
        return (queued, 0)
    }
}

/// The engine as a whole (parse, decide, deliver, forward, answer, count) driven through a scripted port and a
/// recording sink: frames with the offload headers a host with the kernel's defaults gives, merged 64 KB frames,
/// frames of other VLANs, frames the ring cut, garbage.
struct EngineTests {
    typealias D = DeciderTests
    static let client = IPAddress("198.18.1.7")!
    static let clientMAC: UInt64 = 0x0200_0000_0107

    static func engine(node: UInt16, delivery: Delivery = .flood, blocks: [ScriptedPort.Batch]) -> (
        Engine, ScriptedPort, RecordingSink
    ) {
        let port = ScriptedPort(blocks)
        let sink = RecordingSink()
        let configuration = EngineConfiguration(
            interface: "eth0", interfaceMAC: D.macs[node]!, tapName: "lb0")
        let engine = Engine(
            configuration: configuration, state: D.state(node: node, delivery: delivery), port: port, sink: sink)
        return (engine, port, sink)
    }

    /// A TCP segment to the VIP with `header` in front, as the ring delivers it.
    static func tcp(port: UInt16, flags: UInt8 = 0x10, payload: Int = 0, header: OffloadHeader = .init()) -> [UInt8] {
        withHeader(
            header,
            PacketBuilder.tcp(
                destinationMAC: D.vmac, sourceMAC: clientMAC, source: client, destination: D.vip, sourcePort: port,
                destinationPort: 80, flags: flags, payload: Array(repeating: 0x61, count: payload)))
    }

    static func withHeader(_ header: OffloadHeader, _ frame: [UInt8]) -> [UInt8] {
        func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
        return [header.flags, header.gsoType] + le16(header.headerLength) + le16(header.segmentSize)
            + le16(header.checksumStart) + le16(header.checksumOffset) + frame
    }

    /// What GRO or a peer's TSO leaves: 44 segments of 1448 bytes merged, the TCP checksum partial.
    static let merged = OffloadHeader(
        flags: OffloadHeader.needsChecksum, gsoType: OffloadHeader.gsoTCPv4, headerLength: 54, segmentSize: 1448,
        checksumStart: 34, checksumOffset: 16)

    static func block(_ frames: [UInt8]...) -> ScriptedPort.Batch {
        ScriptedPort.Batch(frames: frames.map { ($0, false, nil) })
    }

    @Test func aMergedFrameWithAPartialChecksumEntersTheTapWhole() {
        let frame = Self.tcp(port: D.port(ownedBy: 1), payload: 44 * 1448, header: Self.merged)
        #expect(frame.count > 60_000)
        let (engine, _, sink) = Self.engine(node: 1, blocks: [Self.block(frame)])
        #expect(engine.runBatch() == 1)
        #expect(sink.written == [frame])  // one write, header and frame unchanged: the stack finishes it
        #expect(engine.batch.delivered == 1)
        #expect(engine.batch.received(.mergedTCPv4) == 1)
        #expect(engine.flowTableCount == 1)
    }

    /// Of a frame longer than a ring slot the ring holds the head: enough to decide. The owner reads it whole and
    /// writes it whole; a node that does not own it (flood) discards it unread; the director forwards it whole.
    @Test func aFrameLongerThanItsSlotIsDecidedOnItsHeadAndReadWholeOnlyWhenTaken() {
        let mine = Self.tcp(port: D.port(ownedBy: 1), payload: 44 * 1448, header: Self.merged)
        let theirs = Self.tcp(port: D.port(ownedBy: 2), payload: 44 * 1448, header: Self.merged)
        let block = ScriptedPort.Batch(frames: [(mine, false, nil), (theirs, false, nil)], headsOnly: [0, 1])
        let (owner, ownerPort, sink) = Self.engine(node: 1, blocks: [block])
        #expect(owner.runBatch() == 2)
        #expect(sink.written == [mine])
        #expect(ownerPort.discardedWholes == 1 && owner.batch.dropped(.notOwner) == 1)
        #expect(owner.batch.received(.mergedTCPv4) == 2)

        let (director, port, _) = Self.engine(node: 1, delivery: .directed, blocks: [block])
        _ = director.runBatch()
        #expect(port.forwarded.map(\.frame) == [theirs] && port.discardedWholes == 0)
    }

    /// The lease is read at the first frame of each batch, not when the engine began to wait: an idle engine waits
    /// up to 100 ms, and a lease renewed meanwhile must count (else the first frames after a quiet spell, a client's
    /// SYN among them, were dropped as fenced), while one that ran out meanwhile must too.
    @Test func theFirstFrameAfterAWaitIsJudgedByTheLeaseAsItIsThen() {
        let mine = D.port(ownedBy: 1)
        let (engine, port, sink) = Self.engine(node: 1, blocks: [Self.block(Self.tcp(port: mine, flags: 0x02))])
        engine.renewLease(checkedAt: .now - .seconds(1), milliseconds: 30)  // ran out while the engine waited
        #expect(engine.runBatch() == 1)
        #expect(engine.batch.dropped(.fenced) == 1 && sink.written.isEmpty)
        engine.renewLease(checkedAt: .now, milliseconds: 30)  // renewed while it waited
        port.add(Self.block(Self.tcp(port: mine, flags: 0x02)))
        #expect(engine.runBatch() == 1)
        #expect(engine.batch.delivered == 1 && sink.written.count == 1)
    }

    @Test func writesCompleteAtTheEndOfEveryBatch() {
        let mine = D.port(ownedBy: 1)
        let partial = OffloadHeader(flags: OffloadHeader.needsChecksum, checksumStart: 34, checksumOffset: 16)
        let (engine, _, sink) = Self.engine(
            node: 1,
            blocks: [
                Self.block(Self.tcp(port: mine, flags: 2, header: partial), Self.tcp(port: mine, header: partial)),
                Self.block(Self.tcp(port: mine, payload: 100, header: partial)),
            ])
        #expect(engine.runBatch() == 2)
        #expect(sink.flushes == 1 && sink.written.count == 2)
        #expect(engine.runBatch() == 1)
        #expect(sink.flushes == 2 && engine.batch.delivered == 3)
        #expect(engine.batch.received(.partialChecksum) == 3)
    }

    @Test func aFrameOfAnotherOwnerIsDroppedInFloodAndForwardedWithItsHeaderByTheDirector() {
        let frame = Self.tcp(port: D.port(ownedBy: 2), payload: 44 * 1448, header: Self.merged)
        let (flood, _, floodSink) = Self.engine(node: 1, blocks: [Self.block(frame)])
        _ = flood.runBatch()
        #expect(floodSink.written.isEmpty && flood.batch.dropped(.notOwner) == 1)

        let (director, port, sink) = Self.engine(node: 1, delivery: .directed, blocks: [Self.block(frame)])
        _ = director.runBatch()
        #expect(sink.written.isEmpty)
        #expect(port.forwarded.map(\.mac) == [D.macs[2]!])
        #expect(port.forwarded.first?.frame == frame)  // the kernel segments it where the link needs it
        #expect(director.batch.forwarded == 1)
    }

    @Test func framesOfAnotherVLANAndFramesTheRingCutAreCountedAndDropped() {
        let mine = Self.tcp(port: D.port(ownedBy: 1), flags: 2)
        let (engine, _, sink) = Self.engine(
            node: 1,
            blocks: [
                ScriptedPort.Batch(frames: [
                    (mine, false, 100),  // VLAN 100: not ours
                    (mine, true, nil),  // cut by the ring
                    (mine, false, 0x2000),  // a priority tag on the native VLAN: ours
                ])
            ])
        #expect(engine.runBatch() == 3)
        #expect(engine.batch.dropped(.otherVLAN) == 1)
        #expect(engine.batch.dropped(.truncatedByRing) == 1)
        #expect(sink.written == [mine])
    }

    @Test func garbageIsCountedAndTheNextFrameOfTheBlockStillDelivered() {
        let mine = Self.tcp(port: D.port(ownedBy: 1), flags: 2)
        let runt = Self.withHeader(.init(), [0x02, 0x00, 0x00])
        var badIPv4 = mine
        badIPv4[OffloadHeader.size + 14] = 0x41  // IPv4 header length 4 bytes
        let (engine, _, sink) = Self.engine(node: 1, blocks: [Self.block(runt, badIPv4, mine)])
        #expect(engine.runBatch() == 3)
        #expect(engine.batch.dropped(.truncatedEthernet) == 1)
        #expect(engine.batch.dropped(.badIPv4Header) == 1)
        #expect(sink.written == [mine])
    }

    /// A router on the path says "fragmentation needed" about a segment the VIP sent: the node that owns the
    /// connection gets it (path MTU discovery works through the farm), the others do not, and nobody records a
    /// connection for it.
    @Test func anICMPErrorReachesTheNodeThatOwnsTheConnectionItQuotes() {
        let clientPort = D.port(ownedBy: 2)
        let error = Self.withHeader(
            .init(), FrameParserTests.fragmentationNeeded(quotingClientPort: clientPort, destinationMAC: D.vmac))
        let (owner, _, ownerSink) = Self.engine(node: 2, blocks: [Self.block(error)])
        let (other, _, otherSink) = Self.engine(node: 1, blocks: [Self.block(error)])
        _ = owner.runBatch()
        _ = other.runBatch()
        #expect(ownerSink.written == [error])
        #expect(otherSink.written.isEmpty && other.batch.dropped(.notOwner) == 1)
        #expect(owner.flowTableCount == 0)
    }

    /// A client's ARP request for the VIP, as the ring hands it over.
    static var arpRequestForTheVIP: [UInt8] {
        withHeader(
            .init(),
            PacketBuilder.arp(
                operation: 1, ethernetSource: clientMAC, ethernetDestination: 0xFFFF_FFFF_FFFF, senderMAC: clientMAC,
                senderIP: client.ipv4Value!, targetMAC: 0, targetIP: D.vip.ipv4Value!))
    }

    /// A flood of ARP requests for the VIP gets a burst of answers, then about one a millisecond; the rest are dropped
    /// and counted.
    @Test func aFloodOfARPRequestsGetsABudgetOfAnswers() {
        let request = Self.arpRequestForTheVIP
        let flood = ScriptedPort.Batch(frames: Array(repeating: (request, false, nil), count: 1000))
        let (leader, port, _) = Self.engine(node: 1, blocks: [flood])
        _ = leader.runBatch()
        #expect(leader.batch.answered + leader.batch.dropped(.answerRateLimited) == 1000)
        #expect(leader.batch.answered >= AnswerBudget.arp.burst && leader.batch.answered < AnswerBudget.arp.burst + 50)
        #expect(port.sent.count == Int(leader.batch.answered))
    }

    /// A ping flood to the VIP: the owner delivers a burst, then about one a millisecond, and counts the rest; a ping
    /// now and then always goes through.
    @Test func aPingFloodToTheVIPGetsABudget() {
        let echo: [UInt8] = [8, 0, 0xF7, 0xFF, 0, 0, 0, 0]
        let ping = Self.withHeader(
            .init(),
            PacketBuilder.ip(
                destinationMAC: D.vmac, sourceMAC: Self.clientMAC, source: Self.client, destination: D.vip,
                protocol: 1, payload: echo))
        let flood = ScriptedPort.Batch(frames: Array(repeating: (ping, false, nil), count: 3000))
        let engines = [UInt16(1), 2].map { Self.engine(node: $0, blocks: [flood]) }
        for (engine, _, _) in engines { _ = engine.runBatch() }
        let (owner, _, sink) = engines.first { !$0.2.written.isEmpty }!
        #expect(sink.written.count + Int(owner.batch.dropped(.echoRateLimited)) == 3000)
        #expect(
            sink.written.count >= Int(AnswerBudget.echo.burst) && sink.written.count < Int(AnswerBudget.echo.burst) + 50
        )
        #expect(engines.allSatisfy { $0.0.batch.dropped(.notOwner) == 3000 || $0.0 === owner })
    }

    @Test func theARPLeaderAnswersForTheVIP() {
        let request = Self.arpRequestForTheVIP
        let (leader, port, sink) = Self.engine(node: 1, blocks: [Self.block(request)])
        _ = leader.runBatch()
        #expect(sink.written.isEmpty && leader.batch.answered == 1)
        let reply = port.sent.first ?? []
        #expect(reply.count >= 42 && Array(reply[0..<6]) == PacketBuilder.macBytes(Self.clientMAC))
        #expect(Array(reply.dropFirst(22).prefix(6)) == PacketBuilder.macBytes(D.vmac))  // sender MAC: the VIP's
        let (follower, _, _) = Self.engine(node: 2, blocks: [Self.block(request)])
        _ = follower.runBatch()
        #expect(follower.batch.dropped(.notARPLeader) == 1)
    }

    /// On its own thread: a new state takes effect between batches, and the published counters add up.
    @Test func aSwappedStateTakesEffectAtTheNextBatch() throws {
        let frame = Self.tcp(port: D.port(ownedBy: 2), flags: 2)
        let (engine, port, sink) = Self.engine(node: 1, blocks: [Self.block(frame)])
        engine.start()
        defer { engine.stop() }
        try Self.wait { engine.counters.received == 1 }
        #expect(engine.counters.dropped(.notOwner) == 1)
        let generation = engine.stateGeneration
        var everything = D.state(node: 1)
        everything.table = try TableBuilder(seed: D.seed, bucketCount: 64).build(
            MembershipView(equalWeights: [NodeID(1)!]), generation: generation + 1)
        everything.generation = generation + 1
        engine.swap(everything)
        try Self.wait { engine.stateGeneration == generation + 1 }
        port.add(Self.block(frame))
        try Self.wait { engine.counters.delivered == 1 }
        #expect(sink.written == [frame])
    }

    /// Two threads, one held in the middle of a batch: the free one takes a new state at once, but the engine's
    /// state generation, which says the state runs (the control plane reports the view it runs only then), stays the
    /// old one until the held thread has finished its batch and taken the new state too.
    @Test func aStateRunsOnlyOnceEveryThreadHasTakenIt() throws {
        let (entered, release) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let frame = Self.tcp(port: D.port(ownedBy: 1), flags: 2)
        var held = ScriptedPort.Batch(frames: [(frame, false, nil), (frame, false, nil)])
        held.hold = (entered, release)
        let configuration = EngineConfiguration(interface: "eth0", interfaceMAC: D.macs[1]!, tapName: "lb0")
        let engine = Engine(
            configuration: configuration, state: D.state(node: 1),
            ports: [(ScriptedPort([]), RecordingSink()), (ScriptedPort([held]), RecordingSink())])
        engine.start()
        defer {
            release.signal()
            engine.stop()
        }
        #expect(entered.wait(timeout: .now() + 5) == .success)
        let generation = engine.stateGeneration
        var next = D.state(node: 1)
        next.generation = generation + 1
        engine.swap(next)
        try Self.wait { engine.threadStatus[0].generation == generation + 1 }
        Thread.sleep(forTimeInterval: 0.05)
        #expect(engine.stateGeneration == generation)
        #expect(engine.threadStatus[1].generation == generation && engine.threadStatus[1].counters.received == 0)
        release.signal()
        try Self.wait { engine.stateGeneration == generation + 1 }
        #expect(engine.threadStatus[1].counters.received == 2 && engine.counters.delivered == 2)
    }

    static func wait(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while !condition() {
            guard Date() < deadline else { throw SystemCallError("wait", "the engine did not get there in 5 s") }
            Thread.sleep(forTimeInterval: 0.002)
        }
    }
}
