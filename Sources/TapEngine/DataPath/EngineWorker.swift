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
    /// This thread's number.
    let index: Int
    let port: any PacketPort
    /// Everything the thread changes frame by frame (the flow table, the state it runs, the batch's counters).
    private var work: WorkerState
    let status: Mutex<EngineThreadStatus>

    init(
        index: Int, of threadCount: Int, port: any PacketPort, sink: any FrameSink, orders: EngineOrders,
        configuration: EngineConfiguration
    ) {
        self.index = index
        self.port = port
        work = WorkerState(
            index: index, of: threadCount, port: port, sink: sink, orders: orders, configuration: configuration)
        status = Mutex(EngineThreadStatus(generation: work.state.generation))
    }

    /// What the current batch counted (tests that drive `runBatch` read it; `run` resets it per batch).
    var batch: EngineCounters { work.batch }
    var flowCount: Int { work.flows.count }

    /// Takes the connections of `keys` that belong to this thread into its flow table as `node`'s, confirmed. Before
    /// the thread runs.
    func learn(_ keys: [FlowKey], node: UInt16, now: UInt32) -> Int {
        work.learn(keys, node: node, now: now)
    }

    /// One batch: the frames the port has ready, each decided in place.
    func runBatch() -> Int { work.runBatch() }

    // MARK: - The thread

    func run() {
        var lastKernelDrops: UInt64 = 0
        var lastAnnouncement: UInt32 = 0
        var batches: UInt64 = 0
        var lastSweep: UInt32 = 0
        let sweepSets = max(1, work.flows.slotCount / FlowTable.ways / 100)
        while true {
            let now = work.orders.clock()
            work.now = now
            let (announce, stopping) = work.orders.orders.withLock { orders in
                defer { if index == 0 { orders.announce = false } }
                return (index == 0 && orders.announce, orders.stopping)
            }
            if stopping { return }
            if let generation = work.takeStateAndLease() {
                // Said at once, not after the batch: an idle thread's next batch may be 100 ms away, and the control
                // plane reports a view to its peers only once every thread runs it.
                status.withLock { $0.generation = generation }
            }
            work.checkLease()
            work.batch.reset()
            if announce { repeatsLeft = Self.announcementRepeats }
            if index == 0 && (announce || now &- lastAnnouncement >= announcementPeriod) && !work.fenced {
                sendAnnouncement()
                lastAnnouncement = now
                repeatsLeft = max(0, repeatsLeft - 1)
            }
            if runBatch() > 0 { work.batch.batches = 1 }
            batches &+= 1
            if batches % 64 == 0 {
                let drops = port.kernelDrops()
                work.batch.ringDrops = drops &- lastKernelDrops
                lastKernelDrops = drops
            }
            // The whole table every second, a hundredth per 10 ms: `flowCount` then follows connections that ended
            // within a second (a drain ends when it reaches 0), at a few microseconds per sweep. With the batch's
            // clock, read again at its first frame after the wait: flows it saw are younger than the loop's `now`,
            // whose age against them would wrap round and expire them.
            let batchNow = work.now
            let sinceSweep = batchNow &- lastSweep
            if sinceSweep >= 10 {
                lastSweep = batchNow
                work.flows.expire(now: batchNow, sets: sweepSets * Int(min(sinceSweep / 10, 100)))
            }
            publish()
        }
    }

    private func publish() {
        let (batch, flowCount, flowCounters) = (work.batch, work.flows.count, work.flows.counters)
        let (generation, now) = (work.state.generation, work.now)
        status.withLock { status in
            status.counters.add(batch)
            status.flowCount = flowCount
            status.flowCounters = flowCounters
            status.generation = generation
            status.lastLoop = now
        }
    }

    // MARK: - Announcements (thread 0)

    /// How often the leader announces the VIP (ms; `UInt32.max`: only when asked). The director in directed mode
    /// re-announces from the virtual MAC every 200 ms, so switches keep it on its port (and take it back quickly should
    /// another node have claimed it). In relay mode the director repeats its announcement every 200 ms for
    /// `announcementRepeats` times after taking the role (a neighbour that got another MAC for the VIP within the last
    /// second ignores an update: Linux's `locktime`), then once a second, so that clients and routers that missed one
    /// still learn it.
    private var announcementPeriod: UInt32 {
        guard work.state.isDirector else { return UInt32.max }
        return work.state.role.announcesSlowlyOnceSettled && repeatsLeft == 0 ? 1000 : 200
    }
    static let announcementRepeats = 8
    private var repeatsLeft = 0

    /// Gratuitous ARP for the VIP; in directed mode the director sends it from the virtual MAC, so that the switch
    /// learns the virtual MAC on its port.
    private func sendAnnouncement() {
        let state = work.state
        let source = state.role.announcesVirtualMAC ? state.virtualMAC : work.interfaceMAC
        let frame =
            state.vip.isIPv4
            ? work.responder.arp(to: nil, state: state, ethernetSource: source)
            : work.responder.neighbourAdvertisement(to: nil, state: state, ethernetSource: source)
        if frame.count > 0 && port.send(frame) { work.batch.transmitted += 1 }
    }
}
