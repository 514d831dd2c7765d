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
    /// Let the kernel deliver (and a director forward) the TCP frames of buckets in steady ownership itself, with a
    /// classifier at the interface's ingress that the prefilter's map steers (docs/engine.md, "Kernel delivery"),
    /// where the kernel allows it. Needs the prefilter.
    public var kernelDelivery = true
    /// Where lbnode's heartbeat socket is bound: the kernel delivery classifier acts only while that socket exists,
    /// so a killed lbnode's kernel stops when its peers can first hear it is gone. Nil: no such check (lbbench, tests).
    public var heartbeatSocket: (address: IPAddress, port: UInt16)? = nil
    /// Engine threads: each has a ring, a TAP queue and a flow table of its own, and the clients whose addresses the
    /// fanout program gives it. The rings share `ringBytes` and the threads `flowCapacity`.
    public var threads = 1

    public enum Injection: String, Sendable, CaseIterable { case write, ioUring = "io_uring" }

    /// The threads `engine_threads: auto` runs on `interface`: one per receive queue (the NIC spreads frames over
    /// its queues, and so over CPUs), at most one per online CPU, at least one.
    public static func automaticThreads(interface: String) -> (threads: Int, receiveQueues: Int, cpus: Int) {
        let queues =
            (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(interface)/queues"))?
            .filter { $0.hasPrefix("rx-") }.count ?? 1
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return (max(1, min(queues, cpus)), queues, cpus)
    }

    public init(interface: String, interfaceMAC: UInt64, tapName: String) {
        self.interface = interface
        self.interfaceMAC = interfaceMAC
        self.tapName = tapName
    }
}

/// The data path of one node: `threads` engine threads (`EngineWorker`), each on a ring of its own in one fanout
/// group and on a TAP queue of its own, the interface's frames spread over them by client address.
///
/// Threads: other threads only `swap` in a new state, request an `announce`, renew the lease, read the counters, and
/// `stop`. Those meet each engine thread at its batch boundaries, through a mutex taken once per batch, never per
/// frame. `stateGeneration` is the oldest state a thread still runs: a state counts as running once every thread
/// has taken it.
public final class Engine: @unchecked Sendable {
    public let configuration: EngineConfiguration
    private let orders: EngineOrders
    let workers: [EngineWorker]
    /// Queues of the TAP device the threads write into: one per thread, or 1 when the device has a single queue
    /// (made without `IFF_MULTI_QUEUE`) and the threads share it.
    public let tapQueues: Int
    /// Why the engine writes one frame at a time although io_uring was asked for (the kernel refused it: too old,
    /// or `io_uring_disabled`), or nil.
    public private(set) var injectionFallback: String?
    /// The prefilter on every ring (no socket: turned off, or fake ports), and the MAC the rings receive, fixed when
    /// they open (the prefilter checks it as the classic filter does).
    private let prefilter = Mutex(PrefilterAttachment())
    private let receiveMAC: UInt64
    private var threads: [Thread] = []
    private let finished = DispatchSemaphore(value: 0)

    /// Opens the rings and the TAP queues. Nothing runs until `start`.
    ///
    /// - Throws: `SystemCallError`, saying what failed and why.
    public convenience init(configuration: EngineConfiguration, state: EngineState) throws(SystemCallError) {
        let receiveMAC = Self.receiveMAC(for: state, configuration: configuration)
        var ports: [RingPort] = []
        var sinks: [any FrameSink] = []
        var taps: [TapWriter] = []
        var fallback: String?
        let threads = max(1, configuration.threads)
        for index in 0..<threads {
            // In thread order: a fanout group numbers its rings in the order they joined.
            let fanout: RingPort.Fanout? = threads == 1 ? nil : index == 0 ? .lead : .join(group: ports[0].fanoutGroup!)
            ports.append(
                try RingPort(
                    interface: configuration.interface, vip: state.vip, receiveMAC: receiveMAC,
                    interfaceMAC: configuration.interfaceMAC, ringBytes: configuration.ringBytes / Int32(threads),
                    pollTimeoutMilliseconds: configuration.pollTimeoutMilliseconds, fanout: fanout))
            // A single-queue TAP takes one descriptor: the threads share it (a write is safe from any thread).
            if taps.first?.isMultiQueue ?? true { taps.append(try TapWriter(name: configuration.tapName)) }
            let tap = taps.last!
            if configuration.injection == .ioUring && fallback == nil {
                do {
                    sinks.append(try TapBatchWriter(tap: tap))
                    continue
                } catch {
                    fallback = "\(error)"
                }
            }
            sinks.append(tap)
        }
        self.init(configuration: configuration, state: state, ports: Array(zip(ports, sinks)), tapQueues: taps.count)
        injectionFallback = fallback
        if configuration.prefilter {
            prefilter.withLock { attachment in
                attachment.sockets = ports.map(\.socket)
                if configuration.kernelDelivery {
                    do throws(SystemCallError) {
                        attachment.delivery = try Self.kernelDeliveryTarget(configuration)
                    } catch {
                        attachment.status.kernelDeliveryReason = "\(error)"
                    }
                } else {
                    attachment.status.kernelDeliveryReason = "turned off"
                }
            }
            _ = adoptPrefilter(for: state)
        } else {
            prefilter.withLock { $0.status.reason = "turned off" }
        }
    }

    /// An engine of one thread per port and sink (tests drive it through fakes).
    convenience init(configuration: EngineConfiguration, state: EngineState, port: any PacketPort, sink: any FrameSink)
    {
        self.init(configuration: configuration, state: state, ports: [(port, sink)])
    }

    init(
        configuration: EngineConfiguration, state: EngineState, ports: [(any PacketPort, any FrameSink)],
        tapQueues: Int? = nil
    ) {
        self.configuration = configuration
        let orders = EngineOrders(state: state)
        self.orders = orders
        workers = ports.enumerated().map { index, pair in
            EngineWorker(
                index: index, of: ports.count, port: pair.0, sink: pair.1, orders: orders, configuration: configuration)
        }
        self.tapQueues = tapQueues ?? ports.count
        receiveMAC = Self.receiveMAC(for: state, configuration: configuration)
    }

    /// The MAC client frames are sent to: the virtual MAC, or in relay mode the NIC's own.
    static func receiveMAC(for state: EngineState, configuration: EngineConfiguration) -> UInt64 {
        state.role.usesOwnMAC ? configuration.interfaceMAC : state.virtualMAC
    }

    /// Takes connections the kernel still has for the VIP (`TCPConnections.list`: this node was started again while
    /// they lived) into the flow tables as this node's own, so that it serves them again as soon as it owns, or
    /// takes back, their buckets. Call before `start`. Returns how many it took.
    @discardableResult
    public func learn(_ connections: [TCPConnections.Connection]) -> Int {
        precondition(threads.isEmpty, "learn before start")
        let node = orders.orders.withLock { $0.state.node.rawValue }
        let keys = connections.map(\.flowKey)
        let now = orders.clock()
        return workers.reduce(0) { $0 + $1.learn(keys, node: node, now: now) }
    }

    /// Where the kernel delivers: the TAP's index and MAC, the interface's index.
    private static func kernelDeliveryTarget(
        _ configuration: EngineConfiguration
    ) throws(SystemCallError) -> (target: KernelDeliveryTarget, tapMAC: UInt64) {
        let tapIndex = Int32(if_nametoindex(configuration.tapName))
        let interfaceIndex = Int32(if_nametoindex(configuration.interface))
        guard tapIndex > 0, interfaceIndex > 0 else {
            throw SystemCallError("if_nametoindex", "find \(configuration.tapName) and \(configuration.interface)")
        }
        var mac = [UInt8](repeating: 0, count: 6)
        guard vipfarm_interface_mac(configuration.tapName, &mac) == 0 else {
            throw SystemCallError("ioctl(SIOCGIFHWADDR)", "read the MAC of \(configuration.tapName)")
        }
        return (
            KernelDeliveryTarget(
                tapIndex: tapIndex, interfaceIndex: interfaceIndex, interfaceMAC: configuration.interfaceMAC,
                heartbeat: configuration.heartbeatSocket),
            mac.reduce(0) { $0 << 8 | UInt64($1) }
        )
    }

    /// Starts the engine threads.
    public func start() {
        threads = workers.map { worker in
            let name = workers.count == 1 ? "vipfarm-engine" : "vipfarm-engine\(worker.index)"
            let thread = Thread { [finished] in
                _ = vipfarm_name_thread(name)  // Foundation's name stays its own on Linux
                worker.run()
                finished.signal()
            }
            thread.name = name
            return thread
        }
        for thread in threads { thread.start() }
    }

    /// Stops the engine threads and waits for them (at most one batch timeout).
    public func stop() {
        orders.orders.withLock { $0.stopping = true }
        for worker in workers { worker.port.wake() }
        for _ in threads { finished.wait() }
        threads = []
        // The kernel delivers nothing for a node whose engine is not running.
        prefilter.withLock { $0.link = nil }
    }

    /// Hands the engine a new state; each thread takes it at its next batch boundary. Buckets the kernel delivered and
    /// this node now releases first come back to the ring, and their connections (which the flow tables never saw)
    /// are read from the kernel and given to the threads with the state, so that this node keeps serving them. A
    /// directed director learns its own connections the same way in the buckets of a handover it owns or owned first
    /// (`KernelDeliveryPlan.ownConnectionsToLearn`).
    public func swap(_ newState: EngineState) {
        var learn = adoptPrefilter(for: newState)
        let directorsOwn = KernelDeliveryPlan.ownConnectionsToLearn(
            from: orders.orders.withLock { $0.state }, to: newState)
        if directorsOwn.contains(true) { learn = zip(learn, directorsOwn).map { $0 || $1 } }
        let connections = learn.contains(true) ? connections(in: learn, of: newState) : []
        orders.orders.withLock { orders in
            orders.state = newState
            orders.serial &+= 1
            if !connections.isEmpty {
                for worker in workers { orders.learning[worker.index, default: []] += connections }
            }
        }
        for worker in workers { worker.port.wake() }
    }

    /// The VIP's open TCP connections whose bucket in `state` is flagged in `buckets`.
    private func connections(in buckets: [Bool], of state: EngineState) -> [FlowKey] {
        // A SYN the classifier delivered just before its bucket came back to the ring may still be on its way up
        // the kernel's receive path: give it time to become a socket.
        usleep(1000)
        guard let open = try? TCPConnections.list(localAddress: state.vip) else { return [] }
        return open.map(\.flowKey).filter { key in
            guard case .balanced(let affinity) = state.mode(for: .tcp, port: key.serverPort) else { return false }
            return buckets[
                state.table.bucket(ofHash: affinity.bucketHash(of: key, isFragment: false, seed: state.seed))]
        }
    }

    /// Sends a gratuitous ARP for the VIP at the next batch boundary (on taking the ARP leader or director role).
    public func announce() {
        orders.orders.withLock { $0.announce = true }
        workers[0].port.wake()
    }

    /// What each thread reports, as of its last batch.
    public var threadStatus: [EngineThreadStatus] { workers.map { $0.status.withLock { $0 } } }

    /// The totals so far, as of each thread's last batch.
    public var counters: EngineCounters {
        threadStatus.reduce(into: EngineCounters()) { $0.add($1.counters) }
    }

    /// TCP connections in the flow tables, as of each thread's last batch.
    public var flowCount: Int { threadStatus.reduce(0) { $0 + $1.flowCount } }

    /// The flow tables' totals (confirmed, evicted, refused, ...).
    public var flowCounters: FlowTableCounters {
        threadStatus.reduce(into: FlowTableCounters()) { $0.add($1.flowCounters) }
    }

    /// The generation of the state every thread runs (the oldest any thread still runs).
    public var stateGeneration: UInt64 { threadStatus.map(\.generation).min() ?? 0 }

    /// Whether the prefilter runs (and if not, why), and what it counted.
    public var prefilterStatus: PrefilterStatus {
        prefilter.withLock { attachment in
            var status = attachment.status
            status.kernelDelivery = attachment.link != nil
            if let current = attachment.current, status.running {
                let counts = current.counts
                (status.passed, status.dropped, status.echoDropped) = (
                    counts.passed, counts.dropped, counts.echoDropped
                )
                (status.deliveredInKernel, status.forwardedInKernel, status.droppedInKernel) = (
                    counts.delivered, counts.forwarded, counts.classifierDropped
                )
            }
            return status
        }
    }

    /// The control plane, having checked at `checked` that it is current, vouches for the state for `milliseconds`
    /// from then. Once a lease has been given, the engine serves nothing after it runs out: a control plane that
    /// stalled (a stopped process, a frozen VM) may have been declared dead by its peers, who took its buckets, so the
    /// engine must not deliver a frame that waited in the ring meanwhile before the control plane has caught up.
    /// (Counting from the check, not from the call, covers a stall between the two.)
    public func renewLease(checkedAt checked: ContinuousClock.Instant, milliseconds: Int) {
        let until = orders.clock(at: checked) &+ UInt32(clamping: milliseconds)
        orders.orders.withLock { $0.leaseUntil = until }
        // The classifier's clock is CLOCK_BOOTTIME, as ContinuousClock's on Linux.
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let sinceCheck = (ContinuousClock.now - checked).components
        let nanoseconds =
            Int64(boot.tv_sec) * 1_000_000_000 + Int64(boot.tv_nsec) - sinceCheck.seconds * 1_000_000_000
            - sinceCheck.attoseconds / 1_000_000_000 + Int64(milliseconds) * 1_000_000
        prefilter.withLock { attachment in
            attachment.leaseUntil = UInt64(max(0, nanoseconds))
            attachment.current?.leaseRuns(until: attachment.leaseUntil)
        }
    }

    /// Milliseconds since the slowest engine thread last went round its loop (each does at least every poll
    /// timeout): a large value means one is stuck.
    public var millisecondsSinceLastLoop: Int {
        let now = orders.clock()
        return threadStatus.map { Int(Int32(bitPattern: now &- $0.lastLoop)) }.max() ?? 0
    }

    /// Points the prefilter (and the kernel delivery classifier) at `state`'s buckets, or, when the state needs other
    /// programs (its rules, seed or bucket count differ), attaches new ones to every ring and to the interface in place
    /// of the old. Where the kernel refuses, every frame for the VIP goes on reaching the engine, which decides them
    /// all. Returns the buckets whose connections the flow tables must learn (`KernelDeliveryPlan.released`).
    private func adoptPrefilter(for state: EngineState) -> [Bool] {
        let shape = BucketFilterShape(state: state, receiveMAC: receiveMAC)
        return prefilter.withLock { attachment in
            let none = Array(repeating: false, count: state.table.count)
            guard !attachment.sockets.isEmpty else { return none }
            let tapMAC = attachment.delivery?.tapMAC
            if let current = attachment.current, current.shape == shape {
                let before = current.actions
                current.pass(BucketPrefilter.buckets(for: state, tapMAC: attachment.link == nil ? nil : tapMAC))
                return KernelDeliveryPlan.released(from: before, to: state)
            }
            // Everything to the ring, and nothing left to the old classifier, while the programs change.
            attachment.current?.pass(.all(attachment.current!.shape.bucketCount))
            do throws(SystemCallError) {
                let replacement = try newPrefilter(shape, &attachment)
                let buckets = BucketPrefilter.buckets(for: state, tapMAC: replacement.classifier == nil ? nil : tapMAC)
                // Until the new classifier runs, the ring takes every TCP frame (the old classifier has none),
                // and the datagrams of the buckets the new one will not decide: never one that it will.
                var meanwhile = Buckets.all(shape.bucketCount)
                meanwhile.actions = buckets.actions
                meanwhile.udp = buckets.actions.map { BucketFilterProgram.udpKind($0) == 0 }
                replacement.pass(meanwhile)
                replacement.leaseRuns(until: attachment.leaseUntil)
                for socket in attachment.sockets { try replacement.attach(to: socket) }
                attachClassifier(replacement, &attachment)
                replacement.pass(
                    attachment.link == nil ? BucketPrefilter.buckets(for: state, tapMAC: nil) : buckets)
                attachment.current = replacement
                attachment.status.running = true
                attachment.status.reason = nil
                return attachment.link == nil ? none : KernelDeliveryPlan.released(from: nil, to: state)
            } catch {
                // The programs in place (if any) were built for other rules: they let everything by from now on.
                attachment.link = nil
                attachment.status.running = false
                attachment.status.reason = "\(error)"
                return none
            }
        }
    }

    private typealias Buckets = BucketPrefilter.Buckets

    /// The programs for `shape`: the socket filter, and the classifier where the kernel delivers (without it, and
    /// the kernel's reason said, if only the classifier is refused).
    private func newPrefilter(
        _ shape: BucketFilterShape, _ attachment: inout PrefilterAttachment
    ) throws(SystemCallError) -> BucketPrefilter {
        guard let target = attachment.delivery?.target else { return try BucketPrefilter(shape: shape) }
        do {
            return try BucketPrefilter(shape: shape, deliveringTo: target)
        } catch {
            attachment.delivery = nil
            attachment.status.kernelDeliveryReason = "\(error)"
            return try BucketPrefilter(shape: shape)
        }
    }

    /// Runs `prefilter`'s classifier at the interface's ingress: a new link, or the old one's program replaced. Where
    /// the kernel refuses, the engine delivers everything, and the status says why.
    private func attachClassifier(_ prefilter: BucketPrefilter, _ attachment: inout PrefilterAttachment) {
        guard let classifier = prefilter.classifier, let target = attachment.delivery?.target else {
            attachment.link = nil
            return
        }
        do throws(SystemCallError) {
            if let link = attachment.link {
                try link.replace(with: classifier)
            } else {
                attachment.link = try KernelDeliveryLink(
                    program: classifier, interfaceIndex: target.interfaceIndex, interface: configuration.interface)
            }
            attachment.status.kernelDeliveryReason = nil
        } catch {
            attachment.link = nil
            attachment.delivery = nil
            attachment.status.kernelDeliveryReason = "\(error)"
        }
    }

    // MARK: - For tests that drive one thread

    func runBatch() -> Int { workers[0].runBatch() }
    var batch: EngineCounters { workers[0].batch }
    var flowTableCount: Int { workers[0].flowCount }
}

/// The prefilter's program on the engine's rings.
struct PrefilterAttachment: @unchecked Sendable {
    var sockets: [Int32] = []
    var current: BucketPrefilter?
    var status = PrefilterStatus(running: false, reason: "not started", passed: 0, dropped: 0)
    /// Where the kernel delivers; nil: it does not (turned off, refused, or fake ports).
    var delivery: (target: KernelDeliveryTarget, tapMAC: UInt64)?
    /// The classifier's tcx link while it runs (its actions are in the prefilter's map).
    var link: KernelDeliveryLink?
    /// The engine's lease, for the classifier (CLOCK_BOOTTIME ns).
    var leaseUntil = UInt64.max
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
    /// Pings to the VIP beyond the echo budget, kept out of the ring.
    public var echoDropped: UInt64 = 0
    /// The kernel delivers (and forwards) the TCP frames of buckets in steady ownership and UDP frames itself; if
    /// not, why.
    public var kernelDelivery = false
    public var kernelDeliveryReason: String? = nil
    /// Frames the classifier delivered, forwarded to their owners, and dropped (UDP of buckets this node does not
    /// serve), since it was attached.
    public var deliveredInKernel: UInt64 = 0
    public var forwardedInKernel: UInt64 = 0
    public var droppedInKernel: UInt64 = 0
}
