import Hashing

/// What one engine thread changes frame by frame, in one value that its `EngineWorker` holds. A batch is one `inout`
/// access to it, inside which every field is an ordinary access, checked when the code is compiled. As stored
/// properties of the worker, each access cost an exclusivity check at run time and each frame a copy of the engine
/// state: 6 % and 3 % of the thread's time while it drained a full ring, a quarter and an eighth of its time in user
/// space (`perf record` of `lbbench engine`).
///
/// - Warning: only the worker's thread uses it.
struct WorkerState: ~Copyable {
    let index: Int
    let threadCount: Int
    let port: any PacketPort
    let sink: any FrameSink
    let orders: EngineOrders
    let interfaceMAC: UInt64
    let responder: Responder
    var flows: FlowTable
    /// The verdicts of recent first fragments, for the later ones.
    var fragments = FragmentTable()
    var state: EngineState
    var serial: UInt64 = 0
    /// What the current batch counted (tests that drive `runBatch` read it; `run` resets it per batch).
    var batch = EngineCounters()
    var now: UInt32 = 0
    /// ARP replies and neighbour advertisements this thread may still send (a flood of requests gets few).
    var answerBudget = AnswerBudget.arp
    var echoBudget = AnswerBudget.echo
    /// The lease ran out: every frame is dropped (counted as `fenced`), no ARP is answered, nothing is announced.
    var fenced = false
    /// The lease as of this batch, and whether the first frame of the batch checked it (after the port's wait: the
    /// process may have been stopped in it).
    var lease: UInt32?
    var leaseChecked = false
    /// The next frame of the batch, parsed while this one was decided (its flow's sets prefetched): its bytes, to
    /// know it when its turn comes, and what the parser made of it. Only ever the frame handed over next.
    var lookahead: (bytes: UnsafeRawBufferPointer, outcome: ParseOutcome)?

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
        responder = Responder()
        state = orders.orders.withLock { $0.state }
        flows = FlowTable(
            capacity: max(1024, configuration.flowCapacity / threadCount), idleTimeout: configuration.flowIdleTimeout,
            closingTimeout: configuration.flowClosingTimeout, unconfirmedTimeout: configuration.flowUnconfirmedTimeout,
            seed: UInt64.random(in: 0...UInt64.max))
    }

    deinit {
        responder.deallocate()
    }

    /// Takes the newest state, if it is not the one running, and the lease together: the lease is read with the
    /// state, since a state swapped in just before a renewal comes with it. Returns the new state's generation.
    @discardableResult
    mutating func takeStateAndLease() -> UInt64? {
        let serial = self.serial
        let index = self.index
        let (lease, next, learning) = orders.orders.withLock { orders in
            (
                orders.leaseUntil, orders.serial == serial ? nil : (orders.state, orders.serial),
                orders.learning.removeValue(forKey: index)
            )
        }
        if let learning, let next { _ = learn(learning, node: next.0.node.rawValue, now: now) }
        self.lease = lease
        guard let next else { return nil }
        state = next.0
        self.serial = next.1
        return next.0.generation
    }

    /// Takes the connections of `keys` that belong to this thread into its flow table as `node`'s, confirmed.
    mutating func learn(_ keys: [FlowKey], node: UInt16, now: UInt32) -> Int {
        var learnt = 0
        for key in keys where FanoutProgram.thread(ofClient: key.client, threads: threadCount) == index {
            if flows.insert(key, now: now, value: node, confirmed: true) != .refused { learnt += 1 }
        }
        return learnt
    }

    @inline(__always)
    mutating func checkLease() {
        fenced = lease.map { Int32(bitPattern: now &- $0) > 0 } ?? false
    }

    /// One batch: the frames the port has ready, each decided in place.
    mutating func runBatch() -> Int {
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
    private mutating func look(ahead next: ReceivedFrame?) {
        guard let next, !next.isTruncated, !next.isOtherVLAN else {
            lookahead = nil
            return
        }
        let outcome = FrameParser.parse(next.bytes, wholeLength: next.wholeLength)
        flows.prefetch(for: outcome)
        lookahead = (next.withOffloadHeader, outcome)
    }

    /// Decides one frame, in place in the ring.
    @inline(__always)
    private mutating func handle(_ received: ReceivedFrame, next: ReceivedFrame?) {
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
    private mutating func withinEchoBudget(_ frame: Frame) -> Bool {
        guard frame.isEchoRequest, !echoBudget.take(now: now) else { return true }
        batch.drops[DropReason.echoRateLimited.rawValue] += 1
        return false
    }

    /// The frame itself, or, when the ring held only its head, the whole frame from the port (nil, counted as cut,
    /// if it is gone).
    @inline(__always)
    private mutating func whole(of received: ReceivedFrame) -> ReceivedFrame? {
        guard received.wholeLength != nil else { return received }
        guard let whole = port.takeWhole(), !whole.isTruncated else {
            batch.drops[DropReason.truncatedByRing.rawValue] += 1
            return nil
        }
        return whole
    }

    /// After the last frame of a batch, before its ring slots go back to the kernel: the writes and forwards
    /// queued from it complete here.
    private mutating func endOfBatch() {
        count(sink.flush())
        countForwarded(port.flushForwards())
    }

    @inline(__always)
    private mutating func countForwarded(_ flushed: (sent: Int, failed: Int)) {
        batch.forwarded += UInt64(flushed.sent)
        batch.transmitted += UInt64(flushed.sent)
        batch.drops[DropReason.forwardFailed.rawValue] += UInt64(flushed.failed)
    }

    @inline(__always)
    private mutating func count(_ flushed: (written: UInt32, failed: UInt32)) {
        batch.delivered += UInt64(flushed.written)
        batch.drops[DropReason.tapWriteFailed.rawValue] += UInt64(flushed.failed)
    }
}
