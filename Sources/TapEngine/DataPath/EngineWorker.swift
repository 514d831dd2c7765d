import CKernel
import Foundation
import Hashing
import Synchronization

/// What the engine's threads share with the threads that steer them: the state to run, the lease, the requests.
/// Taken once per batch by each thread, never per frame.
final class EngineOrders: Sendable {
    struct Orders {
        /// The newest state, and its serial (every `swap` makes a new one).
        var state: EngineState
        var serial: UInt64 = 0
        /// Until when (engine clock, ms) the control plane vouches for the state; nil: no lease is needed.
        var leaseUntil: UInt32?
        /// A gratuitous ARP is due (thread 0 sends it).
        var announce = false
        var stopping = false
        /// Connections each thread (by index) takes into its flow table with the next state (`Engine.swap`).
        var learning: [Int: [FlowKey]] = [:]
    }
    let orders: Mutex<Orders>
    private let clockStart = ContinuousClock.now

    init(state: EngineState) {
        orders = Mutex(Orders(state: state))
    }

    /// The engine's clock: milliseconds since it was created, wrapping.
    func clock(at instant: ContinuousClock.Instant = .now) -> UInt32 {
        let elapsed = (instant - clockStart).components
        return UInt32(truncatingIfNeeded: elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000)
    }
}

/// What one engine thread reports, as of its last batch.
public struct EngineThreadStatus: Sendable, Equatable {
    public var counters = EngineCounters()
    /// TCP connections in this thread's flow table, and its totals.
    public var flowCount = 0
    public var flowCounters = FlowTableCounters()
    /// The generation of the state this thread runs.
    public var generation: UInt64 = 0
    /// When the thread last went round its loop (engine clock, ms).
    var lastLoop: UInt32 = 0
}

/// One engine thread: reads client frames from its ring in batches, decides each in place with its own flow table,
/// and writes the accepted ones into its TAP queue unchanged, each with its offload header (a merged 64 KB frame is
/// one write). The fanout group sends it the frames of its clients (`FanoutProgram`), so no connection is in two
/// threads' tables; it counts any frame that reached it against that rule (`wrongThread`).
///
/// Threads: `run` owns the port, the sink, the flow table and the current `EngineState`; other threads read `status`.
final class EngineWorker: @unchecked Sendable {
    /// This thread's number, and how many the engine runs.
    let index: Int
    let threadCount: Int
    let port: any PacketPort
    private let sink: any FrameSink
    private let orders: EngineOrders
    private let interfaceMAC: UInt64
    private(set) var flows: FlowTable
    /// The verdicts of recent first fragments, for the later ones.
    private var fragments = FragmentTable()
    private var state: EngineState
    private var serial: UInt64 = 0
    /// What the current batch counted (tests that drive `runBatch` read it; `run` resets it per batch).
    private(set) var batch = EngineCounters()
    private var now: UInt32 = 0
    /// ARP replies and neighbour advertisements this thread may still send (a flood of requests gets few).
    private var answerBudget = AnswerBudget.arp
    private var echoBudget = AnswerBudget.echo
    /// The lease ran out: every frame is dropped (counted as `fenced`), no ARP is answered, nothing is announced.
    private var fenced = false
    /// The lease as of this batch, and whether the first frame of the batch checked it (after the port's wait: the
    /// process may have been stopped in it).
    private var lease: UInt32?
    private var leaseChecked = false
    private let responder = Responder()
    /// The next frame of the batch, parsed while this one was decided (its flow's sets prefetched): its bytes, to
    /// know it when its turn comes, and what the parser made of it. Only ever the frame handed over next.
    private var lookahead: (bytes: UnsafeRawBufferPointer, outcome: ParseOutcome)?
    let status: Mutex<EngineThreadStatus>

    init(
        index: Int, of threadCount: Int, port: any PacketPort, sink: any FrameSink, orders: EngineOrders,
        configuration: EngineConfiguration
    ) {
        self.index = index
        self.threadCount = threadCount
        self.port = port
        self.sink = sink
        self.orders = orders
        interfaceMAC = configuration.interfaceMAC
        state = orders.orders.withLock { $0.state }
        status = Mutex(EngineThreadStatus(generation: state.generation))
        flows = FlowTable(
            capacity: max(1024, configuration.flowCapacity / threadCount), idleTimeout: configuration.flowIdleTimeout,
            closingTimeout: configuration.flowClosingTimeout, unconfirmedTimeout: configuration.flowUnconfirmedTimeout,
            seed: UInt64.random(in: 0...UInt64.max))
    }

    deinit {
        responder.deallocate()
    }

    /// Takes the connections of `keys` that belong to this thread into its flow table as `node`'s, confirmed. Before
    /// the thread runs.
    func learn(_ keys: [FlowKey], node: UInt16, now: UInt32) -> Int {
        var learnt = 0
        for key in keys where FanoutProgram.thread(ofClient: key.client, threads: threadCount) == index {
            if flows.insert(key, now: now, value: node, confirmed: true) != .refused { learnt += 1 }
        }
        return learnt
    }

    // MARK: - The thread

    func run() {
        var lastKernelDrops: UInt64 = 0
        var lastAnnouncement: UInt32 = 0
        var batches: UInt64 = 0
        var lastSweep: UInt32 = 0
        let sweepSets = max(1, flows.slotCount / FlowTable.ways / 100)
        while true {
            now = orders.clock()
            let (announce, stopping) = orders.orders.withLock { orders in
                defer { if index == 0 { orders.announce = false } }
                return (index == 0 && orders.announce, orders.stopping)
            }
            if stopping { return }
            takeStateAndLease()
            checkLease()
            batch.reset()
            if announce { repeatsLeft = Self.announcementRepeats }
            if index == 0 && (announce || now &- lastAnnouncement >= announcementPeriod) && !fenced {
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
            publish()
        }
    }

    private func publish() {
        let flowCount = flows.count
        let flowCounters = flows.counters
        let generation = state.generation
        status.withLock { status in
            status.counters.add(batch)
            status.flowCount = flowCount
            status.flowCounters = flowCounters
            status.generation = generation
            status.lastLoop = now
        }
    }

    /// Takes the newest state, if it is not the one running, and the lease together: the lease is read with the
    /// state, since a state swapped in just before a renewal comes with it.
    private func takeStateAndLease() {
        let serial = self.serial
        let (lease, next, learning) = orders.orders.withLock { orders in
            (
                orders.leaseUntil, orders.serial == serial ? nil : (orders.state, orders.serial),
                orders.learning.removeValue(forKey: index)
            )
        }
        if let learning, let next { _ = learn(learning, node: next.0.node.rawValue, now: now) }
        if let next {
            state = next.0
            self.serial = next.1
            // Said at once, not after the batch: an idle thread's next batch may be 100 ms away, and the control plane
            // reports a view to its peers only once every thread runs it.
            status.withLock { $0.generation = next.0.generation }
        }
        self.lease = lease
    }

    @inline(__always)
    private func checkLease() {
        fenced = lease.map { Int32(bitPattern: now &- $0) > 0 } ?? false
    }

    /// One batch: the frames the port has ready, each decided in place.
    func runBatch() -> Int {
        leaseChecked = false
        defer { lookahead = nil }  // its slot goes back to the kernel
        return port.receive({ handle($0, next: $1) }, endOfBatch: { endOfBatch() })
    }

    /// What the parser makes of `received`: parsed now, or while the frame before it was decided.
    @inline(__always)
    private func parse(_ received: ReceivedFrame) -> ParseOutcome {
        if let lookahead, lookahead.bytes.baseAddress == received.withOffloadHeader.baseAddress,
            lookahead.bytes.count == received.withOffloadHeader.count
        {
            return lookahead.outcome
        }
        return FrameParser.parse(received.bytes, wholeLength: received.wholeLength)
    }

    /// Parses the frame after this one now and prefetches its flow's sets in the flow table, so that they arrive
    /// from memory while this frame is decided: in a table larger than the caches a lookup is a cache miss, which
    /// costs as much as a frame's whole decision.
    @inline(__always)
    private func look(ahead next: ReceivedFrame?) {
        guard let next, !next.isTruncated, !next.isOtherVLAN else {
            lookahead = nil
            return
        }
        let outcome = FrameParser.parse(next.bytes, wholeLength: next.wholeLength)
        if case .frame(let frame) = outcome, frame.key.proto == .tcp { flows.prefetch(frame.key) }
        lookahead = (next.withOffloadHeader, outcome)
    }

    /// Decides one frame, in place in the ring.
    @inline(__always)
    private func handle(_ received: ReceivedFrame, next: ReceivedFrame?) {
        batch.received += 1
        if let kind = received.offload.kind { batch.offloads[kind.rawValue] += 1 }
        if !leaseChecked {
            // The batch's first frame: the engine may have waited long for it (100 ms when idle, or stopped), and the
            // control plane renewed the lease (or swapped a state) meanwhile.
            leaseChecked = true
            now = orders.clock()
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
        let outcome = parse(received)
        look(ahead: next)
        switch outcome {
        case .drop(let reason):
            batch.drops[reason.rawValue] += 1
        case .frame(let frame):
            if threadCount > 1 && FanoutProgram.thread(of: frame, threads: threadCount) != index {
                batch.wrongThread += 1
            }
            switch Decider.decide(frame, state: state, flows: &flows, fragments: &fragments, now: now) {
            case .deliver:
                guard withinEchoBudget(frame), let whole = whole(of: received) else { return }
                count(sink.queue(whole.withOffloadHeader))
            case .forward(let mac):
                guard withinEchoBudget(frame), let whole = whole(of: received) else { return }
                countForwarded(port.forward(whole, to: mac))
            case .answer:
                guard answerBudget.take(now: now) else {
                    batch.drops[DropReason.answerRateLimited.rawValue] += 1
                    return
                }
                let reply =
                    frame.kind == .neighbourSolicitation
                    ? responder.neighbourAdvertisement(to: frame, state: state, ethernetSource: interfaceMAC)
                    : responder.arp(to: frame, state: state, ethernetSource: interfaceMAC)
                if reply.count > 0 && port.send(reply) {
                    batch.answered += 1
                    batch.transmitted += 1
                }
            case .drop(let reason):
                batch.drops[reason.rawValue] += 1
            }
        }
    }

    /// Whether `frame` may go on: anything but a ping, and a ping within the echo budget (else counted).
    @inline(__always)
    private func withinEchoBudget(_ frame: Frame) -> Bool {
        guard frame.isEchoRequest, !echoBudget.take(now: now) else { return true }
        batch.drops[DropReason.echoRateLimited.rawValue] += 1
        return false
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

    // MARK: - Announcements (thread 0)

    /// How often the leader announces the VIP (ms; `UInt32.max`: only when asked). The director in directed mode
    /// re-announces from the virtual MAC every 200 ms, so switches keep it on its port (and take it back quickly should
    /// another node have claimed it). In relay mode the director repeats its announcement every 200 ms for
    /// `announcementRepeats` times after taking the role (a neighbour that got another MAC for the VIP within the last
    /// second ignores an update: Linux's `locktime`), then once a second, so that clients and routers that missed one
    /// still learn it.
    private var announcementPeriod: UInt32 {
        guard state.isDirector else { return UInt32.max }
        return state.role.announcesSlowlyOnceSettled && repeatsLeft == 0 ? 1000 : 200
    }
    static let announcementRepeats = 8
    private var repeatsLeft = 0

    /// Gratuitous ARP for the VIP; in directed mode the director sends it from the virtual MAC, so that the switch
    /// learns the virtual MAC on its port.
    private func sendAnnouncement() {
        let source = state.role.announcesVirtualMAC ? state.virtualMAC : interfaceMAC
        let frame =
            state.vip.isIPv4
            ? responder.arp(to: nil, state: state, ethernetSource: source)
            : responder.neighbourAdvertisement(to: nil, state: state, ethernetSource: source)
        if frame.count > 0 && port.send(frame) { batch.transmitted += 1 }
    }
}
