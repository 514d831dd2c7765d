import CKernel
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
    /// Milliseconds an unconfirmed connection (a SYN, not yet followed by another segment) is kept.
    public var flowUnconfirmedTimeout: UInt32 = 10_000
    /// Bytes of the receive ring.
    public var ringBytes: Int32 = 32 << 20
    /// The longest the engine waits for a frame, in ms: frames wake it, and so do a new state, an announcement and a
    /// stop (`PacketPort.wake`); the timeout only paces the director's periodic announcements and the flow table's
    /// sweep when no frame comes, so an idle engine wakes ten times a second.
    public var pollTimeoutMilliseconds: Int32 = 100
    /// How accepted frames enter the TAP: one `write` each, or batched through io_uring (ring slots go back to
    /// the kernel only once its writes completed).
    public var injection: Injection = .ioUring
    /// Keep other nodes' frames out of the ring with the bucket prefilter (eBPF), where the kernel allows it.
    public var prefilter = true

    public enum Injection: String, Sendable, CaseIterable { case write, ioUring = "io_uring" }

    public init(interface: String, interfaceMAC: UInt64, tapName: String) {
        self.interface = interface
        self.interfaceMAC = interfaceMAC
        self.tapName = tapName
    }
}

/// The data path of one node: reads client frames from the interface's ring in batches, decides each in place, and
/// writes the accepted ones into the TAP device unchanged, each with its offload header (a merged 64 KB frame is one
/// write).
///
/// Threads: `run` (via `start`) owns the port, the sink, the flow table and the current `EngineState`; other threads
/// only `swap` in a new state, request an `announce`, read `counters`, and `stop`. Those meet the engine thread at
/// batch boundaries, through a mutex taken once per batch, never per frame.
public final class Engine: @unchecked Sendable {
    public let configuration: EngineConfiguration
    private let port: any PacketPort
    private let sink: any FrameSink
    private(set) var flows: FlowTable
    private var state: EngineState
    /// What the current batch counted (tests that drive `runBatch` read it; `run` resets it per batch).
    private(set) var batch = EngineCounters()
    private var now: UInt32 = 0
    /// The lease ran out: every frame is dropped (counted as `fenced`), no ARP is answered, nothing is announced.
    private var fenced = false
    /// The lease as of this batch, and whether the first frame of the batch checked it (after the port's wait: the
    /// process may have been stopped in it).
    private var lease: UInt32?
    private var leaseChecked = false
    private let responder = Responder()
    private let clockStart = ContinuousClock.now
    /// The ring's socket, where the prefilter is attached (nil: no prefilter), and the prefilter.
    private var prefilterSocket: Int32?
    private var prefilter: BucketPrefilter?
    /// The MAC the ring receives, fixed when it opens (the prefilter checks it as the classic filter does).
    private let receiveMAC: UInt64

    private struct Shared {
        var pendingState: EngineState?
        var announce = false
        var stopping = false
        var counters = EngineCounters()
        var flowCount = 0
        var flowCounters = FlowTableCounters()
        var generation: UInt64 = 0
        /// Until when (engine clock, ms) the control plane vouches for the state; nil: no lease is needed.
        var leaseUntil: UInt32?
        /// When the engine thread last went round its loop (engine clock, ms).
        var lastLoop: UInt32 = 0
        var prefilter = PrefilterStatus(running: false, reason: "not started", passed: 0, dropped: 0)
    }
    private let shared = Mutex(Shared())
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// Opens the ring and the TAP. Nothing runs until `start`.
    ///
    /// - Throws: `SystemCallError`, saying what failed and why.
    public convenience init(configuration: EngineConfiguration, state: EngineState) throws(SystemCallError) {
        let port = try RingPort(
            interface: configuration.interface, vip: state.vip,
            receiveMAC: Self.receiveMAC(for: state, configuration: configuration),
            interfaceMAC: configuration.interfaceMAC, ringBytes: configuration.ringBytes,
            pollTimeoutMilliseconds: configuration.pollTimeoutMilliseconds)
        let tap = try TapWriter(name: configuration.tapName)
        let sink: any FrameSink =
            switch configuration.injection {
            case .write: tap
            case .ioUring: try TapBatchWriter(tap: tap)
            }
        self.init(configuration: configuration, state: state, port: port, sink: sink)
        if configuration.prefilter {
            prefilterSocket = port.socket
            adoptPrefilter(for: state)
        } else {
            shared.withLock { $0.prefilter.reason = "turned off" }
        }
    }

    /// An engine on a given port and sink (tests drive it through fakes).
    init(configuration: EngineConfiguration, state: EngineState, port: any PacketPort, sink: any FrameSink) {
        self.configuration = configuration
        self.state = state
        self.port = port
        self.sink = sink
        receiveMAC = Self.receiveMAC(for: state, configuration: configuration)
        flows = FlowTable(
            capacity: configuration.flowCapacity, idleTimeout: configuration.flowIdleTimeout,
            closingTimeout: configuration.flowClosingTimeout, unconfirmedTimeout: configuration.flowUnconfirmedTimeout,
            seed: UInt64.random(in: 0...UInt64.max))
    }
    deinit {
        responder.deallocate()
    }

    /// The MAC client frames are sent to: the virtual MAC, or in relay mode the NIC's own.
    static func receiveMAC(for state: EngineState, configuration: EngineConfiguration) -> UInt64 {
        state.delivery == .relay ? configuration.interfaceMAC : state.virtualMAC
    }

    /// Starts the engine thread.
    public func start() {
        let thread = Thread { [self] in
            _ = vipfarm_name_thread("vipfarm-engine")  // Foundation's name stays its own on Linux
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
        port.wake()
        if thread != nil {
            finished.wait()
            thread = nil
        }
    }

    /// Hands the engine a new state; it takes effect at the next batch boundary.
    public func swap(_ newState: EngineState) {
        shared.withLock { $0.pendingState = newState }
        port.wake()
    }

    /// Sends a gratuitous ARP for the VIP at the next batch boundary (on taking the ARP leader or director role).
    public func announce() {
        shared.withLock { $0.announce = true }
        port.wake()
    }

    /// The totals so far, as of the last batch.
    public var counters: EngineCounters { shared.withLock { $0.counters } }

    /// TCP connections in the flow table, as of the last batch.
    public var flowCount: Int { shared.withLock { $0.flowCount } }

    /// The flow table's totals (confirmed, evicted, refused, ...), as of the last batch.
    public var flowCounters: FlowTableCounters { shared.withLock { $0.flowCounters } }

    /// The generation of the state in use, as of the last batch.
    public var stateGeneration: UInt64 { shared.withLock { $0.generation } }

    /// Whether the prefilter runs (and if not, why), and what it counted.
    public var prefilterStatus: PrefilterStatus { shared.withLock { $0.prefilter } }

    /// The engine's clock: milliseconds since it was created, wrapping.
    private func clock(at instant: ContinuousClock.Instant = .now) -> UInt32 {
        let elapsed = (instant - clockStart).components
        return UInt32(truncatingIfNeeded: elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000)
    }

    /// The control plane, having checked at `checked` that it is current, vouches for the state for `milliseconds`
    /// from then. Once a lease has been given, the engine serves nothing after it runs out: a control plane that
    /// stalled (a stopped process, a frozen VM) may have been declared dead by its peers, who took its buckets, so the
    /// engine must not deliver a frame that waited in the ring meanwhile before the control plane has caught up.
    /// (Counting from the check, not from the call, covers a stall between the two.)
    public func renewLease(checkedAt checked: ContinuousClock.Instant, milliseconds: Int) {
        let until = clock(at: checked) &+ UInt32(clamping: milliseconds)
        shared.withLock { $0.leaseUntil = until }
    }

    /// Milliseconds since the engine thread last went round its loop (it does at least every poll timeout): a large
    /// value means it is stuck.
    public var millisecondsSinceLastLoop: Int {
        let last = shared.withLock { $0.lastLoop }
        return Int(Int32(bitPattern: clock() &- last))
    }

    // MARK: - The engine thread

    private func run() {
        var lastKernelDrops: UInt64 = 0
        var lastAnnouncement: UInt32 = 0
        var batches: UInt64 = 0
        var lastSweep: UInt32 = 0
        let sweepSets = max(1, flows.slotCount / FlowTable.ways / 100)
        while true {
            now = clock()
            let (announce, stopping) = shared.withLock { shared in
                defer {
                    shared.announce = false
                    shared.lastLoop = now
                }
                return (shared.announce, shared.stopping)
            }
            if stopping { return }
            takeStateAndLease()
            checkLease()
            batch.reset()
            if announce { repeatsLeft = Self.announcementRepeats }
            if (announce || now &- lastAnnouncement >= announcementPeriod) && !fenced {
                sendAnnouncement()
                lastAnnouncement = now
                repeatsLeft = max(0, repeatsLeft - 1)
            }
            if runBatch() > 0 { batch.batches = 1 }
            batches &+= 1
            if batches % 64 == 0 {
                let drops = port.kernelDrops()
                batch.ringDrops = drops &- lastKernelDrops
                lastKernelDrops = drops
            }
            // The whole table every second, a hundredth per 10 ms: `flowCount` then follows connections that ended
            // within a second (a drain ends when it reaches 0), at a few microseconds per sweep.
            let sinceSweep = now &- lastSweep
            if sinceSweep >= 10 {
                lastSweep = now
                flows.expire(now: now, sets: sweepSets * Int(min(sinceSweep / 10, 100)))
            }
            let flowCount = flows.count
            let flowCounters = flows.counters
            let generation = state.generation
            let filtered = prefilter?.counts
            shared.withLock { shared in
                if let filtered { (shared.prefilter.passed, shared.prefilter.dropped) = filtered }
                shared.counters.add(batch)
                shared.flowCount = flowCount
                shared.flowCounters = flowCounters
                shared.generation = generation
            }
        }
    }

    /// Takes a state swapped in and the lease together: the lease is read with the state, since a state swapped in
    /// just before a renewal comes with it.
    private func takeStateAndLease() {
        let (lease, next) = shared.withLock { shared in
            defer { shared.pendingState = nil }
            return (shared.leaseUntil, shared.pendingState)
        }
        if let next {
            state = next
            if prefilterSocket != nil { adoptPrefilter(for: next) }
        }
        self.lease = lease
    }

    /// Points the prefilter at `state`'s buckets (before the engine decides a frame with it), or, when the state
    /// needs another program (its rules, seed or bucket count differ), attaches a new one in place of the old. Where
    /// the kernel refuses, every frame for the VIP goes on reaching the engine, which decides them all.
    private func adoptPrefilter(for state: EngineState) {
        guard let socket = prefilterSocket else { return }
        let shape = BucketFilterShape(state: state, receiveMAC: receiveMAC)
        if let prefilter, prefilter.shape == shape {
            prefilter.pass(BucketPrefilter.buckets(for: state))
            return
        }
        do {
            let replacement = try BucketPrefilter(shape: shape)
            replacement.pass(BucketPrefilter.buckets(for: state))
            try replacement.attach(to: socket)
            prefilter = replacement
            shared.withLock { $0.prefilter = PrefilterStatus(running: true, reason: nil, passed: 0, dropped: 0) }
        } catch {
            // The program in place (if any) was built for other rules: it lets everything by from now on.
            if let prefilter { prefilter.pass(.all(prefilter.shape.bucketCount)) }
            shared.withLock { $0.prefilter.running = false; $0.prefilter.reason = "\(error)" }
        }
    }

    @inline(__always)
    private func checkLease() {
        fenced = lease.map { Int32(bitPattern: now &- $0) > 0 } ?? false
    }

    /// One batch: the frames the port has ready, each decided in place.
    func runBatch() -> Int {
        leaseChecked = false
        return port.receive({ handle($0) }, endOfBatch: { endOfBatch() })
    }

    /// Decides one frame, in place in the ring.
    @inline(__always)
    private func handle(_ received: ReceivedFrame) {
        batch.received += 1
        if let kind = received.offload.kind { batch.offloads[kind.rawValue] += 1 }
        if !leaseChecked {
            // The batch's first frame: the engine may have waited long for it (100 ms when idle, or stopped), and the
            // control plane renewed the lease (or swapped a state) meanwhile.
            leaseChecked = true
            now = clock()
            takeStateAndLease()
            checkLease()
        }
        if fenced {
            batch.drops[DropReason.fenced.rawValue] += 1
            return
        }
        if received.isOtherVLAN {
            batch.drops[DropReason.otherVLAN.rawValue] += 1
            return
        }
        if received.isTruncated {
            batch.drops[DropReason.truncatedByRing.rawValue] += 1
            return
        }
        switch FrameParser.parse(received.bytes, wholeLength: received.wholeLength) {
        case .drop(let reason):
            batch.drops[reason.rawValue] += 1
        case .frame(let frame):
            switch Decider.decide(frame, state: state, flows: &flows, now: now) {
            case .deliver:
                guard let whole = whole(of: received) else { return }
                count(sink.queue(whole.withOffloadHeader))
            case .forward(let mac):
                guard let whole = whole(of: received) else { return }
                countForwarded(port.forward(whole, to: mac))
            case .answer:
                let reply =
                    frame.kind == .neighbourSolicitation
                    ? responder.neighbourAdvertisement(
                        to: frame, state: state, ethernetSource: configuration.interfaceMAC)
                    : responder.arp(to: frame, state: state, ethernetSource: configuration.interfaceMAC)
                if reply.count > 0 && port.send(reply) {
                    batch.answered += 1
                    batch.transmitted += 1
                }
            case .drop(let reason):
                batch.drops[reason.rawValue] += 1
            }
        }
    }

    /// The frame itself, or, when the ring held only its head, the whole frame from the port (nil, counted as cut,
    /// if it is gone).
    @inline(__always)
    private func whole(of received: ReceivedFrame) -> ReceivedFrame? {
        guard received.wholeLength != nil else { return received }
        guard let whole = port.takeWhole(), !whole.isTruncated else {
            batch.drops[DropReason.truncatedByRing.rawValue] += 1
            return nil
        }
        return whole
    }

    /// After the last frame of a batch, before its ring slots go back to the kernel: the writes and forwards
    /// queued from it complete here.
    private func endOfBatch() {
        count(sink.flush())
        countForwarded(port.flushForwards())
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

    /// How often the leader announces the VIP (ms; `UInt32.max`: only when asked). The director in directed mode
    /// re-announces from the virtual MAC every 200 ms, so switches keep it on its port (and take it back quickly should
    /// another node have claimed it). In relay mode the director repeats its announcement every 200 ms for
    /// `announcementRepeats` times after taking the role (a neighbour that got another MAC for the VIP within the last
    /// second ignores an update: Linux's `locktime`), then once a second, so that clients and routers that missed one
    /// still learn it.
    private var announcementPeriod: UInt32 {
        guard state.isDirector else { return UInt32.max }
        return state.delivery == .relay && repeatsLeft == 0 ? 1000 : 200
    }
    static let announcementRepeats = 8
    private var repeatsLeft = 0

    /// Gratuitous ARP for the VIP; in directed mode the director sends it from the virtual MAC, so that the switch
    /// learns the virtual MAC on its port.
    private func sendAnnouncement() {
        let source = state.delivery == .directed && state.isDirector ? state.virtualMAC : configuration.interfaceMAC
        let frame = responder.arp(to: nil, state: state, ethernetSource: source)
        if frame.count > 0 && port.send(frame) { batch.transmitted += 1 }
    }
}

/// The bucket prefilter as the engine runs it.
public struct PrefilterStatus: Sendable, Equatable {
    /// Frames of other nodes' buckets stay out of the ring.
    public var running: Bool
    /// Why it does not run (or runs an older program): the kernel's refusal, or "turned off".
    public var reason: String?
    /// Frames whose bucket it let through, and dropped, since it was attached.
    public var passed: UInt64
    public var dropped: UInt64
}
