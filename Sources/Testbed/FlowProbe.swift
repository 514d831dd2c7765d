import Foundation
import Glibc
import Hashing
import Synchronization
import TapEngine

/// A steady stream of requests from many client flows to the echo application behind the VIP, UDP and TCP, that
/// records every reply: which server answered which request when (a UDP reply by the kernel's arrival stamp), and
/// when a TCP connection was reset. The failover benchmark turns the record into interruptions, losses and resets.
///
/// A request is 6 bytes: the sequence number (4) and the flow index (2); the echo server puts its ID in front. A TCP
/// connection has one request outstanding at a time (the echo server answers per read, so two requests in one
/// segment would come back as one reply); a UDP flow sends every interval. The sockets belong to the network namespace of the thread that creates the probe; its two threads (sender and
/// receiver) may run anywhere.
public final class FlowProbe: @unchecked Sendable {
    /// What one flow saw. Written by the receiver thread only, read after `stop()`.
    public struct Record {
        public let isTCP: Bool
        public var sent = 0
        /// (time in ns since the probe started, sequence number, server ID), in arrival order.
        public var replies: [(time: Int64, sequence: UInt32, server: UInt16)] = []
        /// When the connection was reset or closed (TCP), in ns since the probe started.
        public var resetAt: Int64?
        /// How it ended: the receive's error (`Connection reset by peer`), or `closed` for an orderly close.
        public var resetReason: String?
    }

    public let intervalNanoseconds: Int64
    private let sockets: [Socket]
    public private(set) var records: [Record]
    private let clock = ContinuousClock()
    public let started = ContinuousClock.now
    private let stopRequested = Mutex(false)
    private let done = DispatchSemaphore(value: 0)
    private var running = false
    /// Per flow: a TCP request waits for its reply.
    private let outstanding: Mutex<[Bool]>

    /// What a live display reads while the probe runs.
    public struct Live: Sendable {
        /// Replies by server ID.
        public var answered: [UInt16: Int] = [:]
        /// Per flow, the server of its last reply (0: none yet).
        public var lastServer: [UInt16]
        /// Per flow, when its last reply came (ns since the probe started).
        public var lastTime: [Int64]
        /// Per flow, whether it was reset (TCP).
        public var reset: [Bool]
    }
    private let live: Mutex<Live>

    /// A copy of the live counts.
    public var snapshot: Live { live.withLock { $0 } }

    /// Whether flow `index` is a TCP connection.
    public func isTCP(_ index: Int) -> Bool { index >= udpCount }
    public let udpCount: Int
    /// UDP requests are padded to this size (the throughput benchmark's frame size).
    public let udpRequestBytes: Int

    /// Opens `udp` UDP sockets (ports `firstPort`...) and `tcp` TCP connections to `vip`:`port`.
    ///
    /// - Throws: `SystemCallError` when a socket cannot be opened or a connection is not accepted within a second.
    /// - Parameter interface: bind every socket to this interface (`SO_BINDTODEVICE`), on a client with several.
    public init(
        vip: IPAddress, port: UInt16, udp: Int, tcp: Int, firstPort: UInt16, intervalMilliseconds: Double,
        interface: String? = nil, udpRequestBytes: Int = 6
    ) throws(SystemCallError) {
        self.udpRequestBytes = max(6, udpRequestBytes)
        intervalNanoseconds = Int64(intervalMilliseconds * 1_000_000)
        var sockets: [Socket] = []
        var records: [Record] = []
        let local = vip.isIPv4 ? IPAddress(bytes: [0, 0, 0, 0])! : IPAddress(bytes: [UInt8](repeating: 0, count: 16))!
        for index in 0..<udp {
            let socket = try Socket(for: vip, type: SOCK_DGRAM)
            if let interface { try socket.bind(toDevice: interface) }
            try socket.bind(local, port: firstPort + UInt16(index))
            try socket.connect(to: vip, port: port)
            try socket.setBlocking(false)
            _ = socket.lastArrivalRealtime  // switches the kernel's arrival stamps on
            sockets.append(socket)
            records.append(Record(isTCP: false))
        }
        for _ in 0..<tcp {
            sockets.append(try StreamConnection(to: vip, port: port, interface: interface).socket)
            records.append(Record(isTCP: true))
        }
        self.sockets = sockets
        self.records = records
        outstanding = Mutex([Bool](repeating: false, count: sockets.count))
        live = Mutex(
            Live(
                lastServer: [UInt16](repeating: 0, count: sockets.count),
                lastTime: [Int64](repeating: 0, count: sockets.count),
                reset: [Bool](repeating: false, count: sockets.count)))
        udpCount = udp
    }

    deinit {
        stop()
    }

    /// Nanoseconds since the probe was created (monotonic).
    public var now: Int64 { Self.nanoseconds(clock.now - started) }

    public static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    /// Starts the sender and receiver threads.
    public func start() {
        running = true
        Thread.detachNewThread { [self] in
            send()
            done.signal()
        }
        Thread.detachNewThread { [self] in
            receive()
            done.signal()
        }
    }

    /// Stops sending, waits `lingerMilliseconds` for the last replies, then stops receiving.
    public func stop(lingerMilliseconds: Int = 200) {
        guard running else { return }
        running = false
        stopRequested.withLock { $0 = true }
        done.wait()
        Thread.sleep(forTimeInterval: Double(lingerMilliseconds) / 1000)
        receiving.withLock { $0 = false }
        done.wait()
        // Now, not when the last reference goes: the threads' last references to the probe may outlive `stop` by a
        // moment, and the next probe binds the same ports at once.
        for socket in sockets { socket.close() }
    }

    private let receiving = Mutex(true)

    /// Sends every interval. It never touches `records`, which the receiver thread writes: `isTCP` goes by index.
    private func send() {
        var sequence: UInt32 = 0
        var sent = [Int](repeating: 0, count: sockets.count)
        // One request buffer per flow, its index written once; only the sequence number changes.
        var requests = sockets.indices.map { index in
            var request = [UInt8](repeating: 0, count: isTCP(index) ? 6 : udpRequestBytes)
            withUnsafeBytes(of: UInt16(index).bigEndian) { request.replaceSubrange(4..<6, with: $0) }
            return request
        }
        var next = now
        while !stopRequested.withLock({ $0 }) {
            let waiting = outstanding.withLock { waiting in
                defer { for index in waiting.indices where isTCP(index) { waiting[index] = true } }
                return waiting
            }
            for (index, socket) in sockets.enumerated() where !waiting[index] {
                withUnsafeBytes(of: sequence.bigEndian) { requests[index].replaceSubrange(0..<4, with: $0) }
                let size = requests[index].count
                let count = requests[index].withUnsafeBytes { try? socket.send($0, flags: Int32(MSG_DONTWAIT)) }
                if count == size { sent[index] += 1 }
            }
            sendTimes.append(now)
            sequence += 1
            next += intervalNanoseconds
            let wait = next - now
            if wait > 0 { usleep(UInt32(wait / 1000)) } else { next = now }
        }
        sentCounts = sent  // read by the receiver when it ends, after this thread has (see `stop`)
    }

    private var sentCounts: [Int] = []

    /// When each round of requests was sent (ns since the probe started), by sequence number. Written by the sender
    /// thread, read after `stop()`.
    public private(set) var sendTimes: [Int64] = []

    private func receive() {
        var buffers = [[UInt8]](repeating: [], count: sockets.count)
        var chunk = [UInt8](repeating: 0, count: 4096)
        var polled = sockets.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
        while receiving.withLock({ $0 }) {
            guard (try? Socket.poll(&polled, timeoutMilliseconds: 10)) ?? 0 > 0 else { continue }
            for index in polled.indices where polled[index].revents != 0 {
                while true {
                    let count: Int
                    var failure = "closed"
                    do {
                        let taken = try chunk.withUnsafeMutableBytes {
                            try sockets[index].receive(into: $0, flags: Int32(MSG_DONTWAIT))
                        }
                        guard let taken else { break }  // nothing more waits
                        count = taken
                    } catch {
                        count = -1  // reset
                        failure = (error as? SystemCallError).map { String(cString: strerror($0.errno)) } ?? "\(error)"
                    }
                    if count <= 0 {
                        if records[index].isTCP, records[index].resetAt == nil {
                            records[index].resetAt = now
                            records[index].resetReason = failure
                            live.withLock { $0.reset[index] = true }
                        }
                        polled[index].fd = -1  // poll ignores negative descriptors
                        break
                    }
                    let time = now
                    if records[index].isTCP {
                        buffers[index] += chunk[0..<count]
                        while buffers[index].count >= 8 {
                            record(Array(buffers[index][0..<8]), flow: index, time: time)
                            buffers[index].removeFirst(8)
                            outstanding.withLock { $0[index] = false }
                        }
                    } else if count >= 8 {
                        record(Array(chunk[0..<8]), flow: index, time: arrival(at: sockets[index], readAt: time))
                    }
                }
            }
        }
        for index in records.indices {
            records[index].sent = sentCounts.indices.contains(index) ? sentCounts[index] : 0
        }
    }

    /// When the datagram just read from `socket` reached it, on the probe's clock: the reader may have run late (a
    /// loaded machine), and a reply is as early as the kernel saw it. Its age comes from the kernel's stamp, so the
    /// two clocks only need to agree on a few milliseconds' difference.
    private func arrival(at socket: Socket, readAt time: Int64) -> Int64 {
        guard let stamp = socket.lastArrivalRealtime else { return time }
        var realtime = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        let age = Int64(realtime.tv_sec) * 1_000_000_000 + Int64(realtime.tv_nsec) - stamp
        return time - min(max(0, age), time)
    }

    private func record(_ reply: [UInt8], flow: Int, time: Int64) {
        let server = UInt16(reply[0]) << 8 | UInt16(reply[1])
        let sequence = reply[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        records[flow].replies.append((time, sequence, server))
        live.withLock {
            $0.answered[server, default: 0] += 1
            $0.lastServer[flow] = server
            $0.lastTime[flow] = time
        }
    }
}
