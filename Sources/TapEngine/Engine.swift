import Foundation
import Hashing
import Synchronization

/// What the engine is attached to; fixed for its life.
public struct EngineConfiguration: Sendable {
    /// The NIC that faces the clients.
    public var interface: String
    /// The NIC's own MAC: the Ethernet source of everything the engine sends.
    public var interfaceMAC: UInt64
    /// The TAP device that holds the VIP.
    public var tapName: String
    /// TCP connections remembered for handovers.
    public var flowCapacity = 1 << 18
    /// Milliseconds without a packet after which a TCP connection is forgotten.
    public var flowIdleTimeout: UInt32 = 300_000
    /// Milliseconds a connection is kept after its FIN, for the last ACKs.
    public var flowClosingTimeout: UInt32 = 10_000
    /// Bytes of the receive ring.
    public var ringBytes: Int32 = 32 << 20
    /// TPACKET_V3 block retire timeout in ms.
    public var blockTimeoutMilliseconds: Int32 = 1
    /// How frames are read: libpcap's ring, or the TPACKET_V3 ring walked directly.
    public var receiver: Receiver = .ring
    /// How accepted frames enter the TAP: one `write` each, or batched through io_uring (needs `.ring`, which
    /// keeps a block until its writes completed).
    public var injection: Injection = .ioUring

    public enum Receiver: String, Sendable, CaseIterable { case libpcap, ring }
    public enum Injection: String, Sendable, CaseIterable { case write, ioUring = "io_uring" }

    public init(interface: String, interfaceMAC: UInt64, tapName: String) {
        self.interface = interface
        self.interfaceMAC = interfaceMAC
        self.tapName = tapName
    }
}

/// The data path of one node: reads client frames from the interface's ring in batches, decides each in place, and
/// writes the accepted ones into the TAP device unchanged.
///
/// Threads: `run` (via `start`) owns the ring, the TAP, the flow table and the current `EngineState`; other threads
/// only `swap` in a new state, request an `announce`, read `counters`, and `stop`. Those meet the engine thread at
/// batch boundaries, through a mutex taken once per batch, never per frame.
public final class Engine: @unchecked Sendable {
    public let configuration: EngineConfiguration
    private let port: FrameReceiver
    private let tap: TapWriter
    private let batchWriter: TapRingWriter?
    private var flows: FlowTable
    private var state: EngineState
    private var batch = EngineCounters()
    private var now: UInt32 = 0
    private let responder = Responder()
    private let forwards: ForwardBatch
    private let clockStart = ContinuousClock.now

    private struct Shared {
        var pendingState: EngineState?
        var announce = false
        var stopping = false
        var counters = EngineCounters()
        var flowCount = 0
        var generation: UInt64 = 0
    }
    private let shared = Mutex(Shared())
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// Opens the ring and the TAP. Nothing runs until `start`.
    ///
    /// - Throws: `PacketPortError` or `SystemCallError`, each saying what failed and why.
    public init(configuration: EngineConfiguration, state: EngineState) throws {
        self.configuration = configuration
        self.state = state
        forwards = ForwardBatch(sourceMAC: configuration.interfaceMAC)
        switch configuration.receiver {
        case .libpcap:
            port = try PacketPort(
                interface: configuration.interface, vip: state.vip, virtualMAC: state.virtualMAC,
                bufferBytes: configuration.ringBytes, blockTimeoutMilliseconds: configuration.blockTimeoutMilliseconds)
        case .ring:
            port = try RingPort(
                interface: configuration.interface, vip: state.vip, virtualMAC: state.virtualMAC,
                ringBytes: configuration.ringBytes, blockTimeoutMilliseconds: configuration.blockTimeoutMilliseconds)
        }
        tap = try TapWriter(name: configuration.tapName)
        switch (configuration.injection, configuration.receiver) {
        case (.write, _):
            batchWriter = nil
        case (.ioUring, .ring):
            batchWriter = try TapRingWriter(tapDescriptor: tap.fd)
        case (.ioUring, .libpcap):
            throw SystemCallError(
                "io_uring",
                "batched TAP writes need the direct ring (receiver .ring): libpcap "
                    + "returns ring blocks to the kernel before the writes complete", errno: EINVAL)
        }
        flows = FlowTable(
            capacity: configuration.flowCapacity, idleTimeout: configuration.flowIdleTimeout,
            closingTimeout: configuration.flowClosingTimeout, seed: UInt64.random(in: 0...UInt64.max))
    }

    deinit {
        responder.deallocate()
    }

    /// Starts the engine thread.
    public func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "vipfarm-engine"
        self.thread = thread
        thread.start()
    }

    /// Stops the engine thread and waits for it (at most one batch timeout).
    public func stop() {
        shared.withLock { $0.stopping = true }
        port.breakLoop()
        if thread != nil {
            finished.wait()
            thread = nil
        }
    }

    /// Hands the engine a new state; it takes effect at the next batch boundary.
    public func swap(_ newState: EngineState) {
        shared.withLock { $0.pendingState = newState }
    }

    /// Sends a gratuitous ARP for the VIP at the next batch boundary (on taking the ARP leader or director role).
    public func announce() {
        shared.withLock { $0.announce = true }
    }

    /// The totals so far, as of the last batch.
    public var counters: EngineCounters { shared.withLock { $0.counters } }

    /// TCP connections in the flow table, as of the last batch.
    public var flowCount: Int { shared.withLock { $0.flowCount } }

    /// The generation of the state in use, as of the last batch.
    public var stateGeneration: UInt64 { shared.withLock { $0.generation } }

    // MARK: - The engine thread

    private func run() {
        var lastKernelDrops: UInt64 = 0
        var lastAnnouncement: UInt32 = 0
        var batches: UInt64 = 0
        while true {
            let (next, announce, stopping) = shared.withLock { shared in
                defer {
                    shared.pendingState = nil
                    shared.announce = false
                }
                return (shared.pendingState, shared.announce, shared.stopping)
            }
            if stopping { return }
            if let next { state = next }
            let elapsed = (ContinuousClock.now - clockStart).components
            now = UInt32(truncatingIfNeeded: elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000)
            batch.reset()
            // The director re-announces from the virtual MAC every 200 ms, so switches keep it on its port (and take it
            // back quickly should another node have claimed it).
            let keepalive = state.delivery == .directed && state.isDirector && now &- lastAnnouncement >= 200
            if announce || keepalive {
                sendAnnouncement()
                lastAnnouncement = now
            }
            let count = port.dispatch(to: self)
            endOfBlock()  // libpcap has no block boundary to tell: flush after each dispatch (forwards are copies)
            if count > 0 { batch.batches = 1 }
            batches &+= 1
            if batches % 64 == 0 {
                let drops = port.kernelDrops()
                batch.ringDrops = drops &- lastKernelDrops
                lastKernelDrops = drops
                flows.expire(now: now, sets: 256)
            }
            let flowCount = flows.count
            let generation = state.generation
            shared.withLock { shared in
                shared.counters.add(batch)
                shared.flowCount = flowCount
                shared.generation = generation
            }
        }
    }

    /// Called by the port for every frame of a batch, in place in the ring.
    @inline(__always)
    func handle(frame bytes: UnsafeRawBufferPointer) {
        batch.received += 1
        switch FrameParser.parse(bytes) {
        case .drop(let reason):
            batch.drops[reason.rawValue] += 1
        case .frame(let frame):
            switch Decider.decide(frame, state: state, flows: &flows, now: now) {
            case .deliver:
                if let batchWriter {
                    count(batchWriter.queue(bytes))
                } else if tap.write(bytes) {
                    batch.delivered += 1
                } else {
                    batch.drops[DropReason.tapWriteFailed.rawValue] += 1
                }
            case .forward(let mac):
                countForwarded(forwards.add(bytes, to: mac, fd: port.socketDescriptor))
            case .answer:
                let reply =
                    frame.kind == .neighbourSolicitation
                    ? responder.neighbourAdvertisement(
                        to: frame, state: state, ethernetSource: configuration.interfaceMAC)
                    : responder.arp(to: frame, state: state, ethernetSource: configuration.interfaceMAC)
                if reply.count > 0 && port.inject(reply) {
                    batch.answered += 1
                    batch.transmitted += 1
                }
            case .drop(let reason):
                batch.drops[reason.rawValue] += 1
            }
        }
    }

    /// Called by the ring port after the last frame of a block, before the block goes back to the kernel: the
    /// batched writes from it complete here.
    func endOfBlock() {
        if let batchWriter { count(batchWriter.flush()) }
        countForwarded(forwards.flush(fd: port.socketDescriptor))
    }

    @inline(__always)
    private func countForwarded(_ flushed: (sent: Int, failed: Int)) {
        batch.forwarded += UInt64(flushed.sent)
        batch.transmitted += UInt64(flushed.sent)
        batch.drops[DropReason.forwardFailed.rawValue] += UInt64(flushed.failed)
    }

    @inline(__always)
    private func count(_ flushed: (written: UInt32, failed: UInt32)) {
        batch.delivered += UInt64(flushed.written)
        batch.drops[DropReason.tapWriteFailed.rawValue] += UInt64(flushed.failed)
    }

    /// Gratuitous ARP for the VIP; in directed mode the director sends it from the virtual MAC, so that the switch
    /// learns the virtual MAC on its port.
    private func sendAnnouncement() {
        let source = state.delivery == .directed && state.isDirector ? state.virtualMAC : configuration.interfaceMAC
        let frame = responder.arp(to: nil, state: state, ethernetSource: source)
        if frame.count > 0 && port.inject(frame) { batch.transmitted += 1 }
    }
}
