import Foundation
import Glibc
import Hashing
import Synchronization
import Testing

@testable import TapEngine

/// The system-call layer: failures throw with their errno, a call that would wait returns nil, and the witness pinger
/// hears its own echo on loopback, thread priorities.
struct SocketTests {
    @Test func aFailedCallThrowsWithItsErrnoAndAWouldBlockIsNil() throws {
        #expect {
            try SystemCall.retrying("close", "close nothing") { close(-1) }
        } throws: { ($0 as? SystemCallError)?.errno == EBADF && "\($0)".contains("close nothing: close") }
        let socket = try Socket(family: AF_INET, type: SOCK_DGRAM, nonBlocking: true)
        try socket.bind(IPAddress("127.0.0.1")!, port: 0)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) } == nil)
    }

    /// A thread's nice value is its own: the daemon raises its heartbeat loop's, not the engine's.
    @Test func aThreadsNiceValueIsItsOwn() throws {
        let base = SystemCall.threadNice()
        let other = Mutex<Int32?>(nil)
        let thread = Thread {
            try? SystemCall.setThreadNice(min(19, base + 3))
            other.withLock { $0 = SystemCall.threadNice() }
        }
        thread.start()
        while other.withLock({ $0 }) == nil { usleep(1000) }
        #expect(other.withLock { $0 } == min(19, base + 3))
        #expect(SystemCall.threadNice() == base)
    }

    @Test func aRefusedConnectionSaysSo() throws {
        let listener = try Socket(family: AF_INET, type: SOCK_STREAM)
        try listener.bind(IPAddress("127.0.0.1")!, port: 0)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener.descriptor, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)  // bound, not listening: connections are refused
        let client = try Socket(family: AF_INET, type: SOCK_STREAM)
        #expect {
            try client.connect(to: IPAddress("127.0.0.1")!, port: port, timeoutMilliseconds: 1000)
        } throws: { ($0 as? SystemCallError)?.errno == ECONNREFUSED }
        try listener.listen()
        let second = try Socket(family: AF_INET, type: SOCK_STREAM)
        try second.connect(to: IPAddress("127.0.0.1")!, port: port, timeoutMilliseconds: 1000)
        #expect(try listener.accept() != nil)
    }

    /// The kernel's arrival stamp of a datagram is the moment it reached the socket, not the later moment of the read.
    @Test func aDatagramsArrivalStampIsWhenItArrivedNotWhenItWasRead() throws {
        let receiver = try Socket(family: AF_INET, type: SOCK_DGRAM, nonBlocking: true)
        try receiver.bind(IPAddress("127.0.0.1")!, port: 0)
        #expect(receiver.lastArrivalRealtime == nil)  // nothing read yet; the call switches the stamps on
        // The first socket on a host to ask switches the kernel's receive stamps on from a work queue
        // (net_enable_timestamp); a datagram that arrives before that is stamped when it is read.
        usleep(100_000)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(receiver.descriptor, $0, &length) }
        }
        let sender = try Socket(family: AF_INET, type: SOCK_DGRAM)
        try sender.connect(to: IPAddress("127.0.0.1")!, port: UInt16(bigEndian: address.sin_port))
        func realtime() -> Int64 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        }
        let sentAt = realtime()
        _ = try [UInt8](repeating: 7, count: 8).withUnsafeBytes { try sender.send($0) }
        usleep(50_000)
        let readAt = realtime()
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try buffer.withUnsafeMutableBytes { try receiver.receive(into: $0) } == 8)
        let arrival = try #require(receiver.lastArrivalRealtime)
        #expect(
            arrival >= sentAt && arrival < readAt - 40_000_000, "sent \(sentAt), arrived \(arrival), read \(readAt)")
    }

    @Test(privileged) func theWitnessPingerHearsLoopbackAnswerAPingSentAtItsStamp() throws {
        let pinger = try WitnessPinger(target: IPAddress("127.0.0.1")!)
        #expect(pinger.answered() == nil)
        pinger.ping(now: 1234)
        var answered: Int?
        for _ in 0..<100 where answered == nil {
            usleep(1000)
            answered = pinger.answered()
        }
        #expect(answered == 1234)
    }

    /// An answer counts only for a request still outstanding, with its token, and tells the time the pinger kept, not
    /// the time in the packet: a reply that claims the far future, answers a request never sent or repeats one already
    /// answered changes nothing.
    @Test(privileged) func theWitnessPingerTakesOnlyAnswersToItsOutstandingRequests() throws {
        let loopback = IPAddress("127.0.0.1")!
        let sniffer = try Socket(family: AF_INET, type: SOCK_RAW, protocol: Int32(IPPROTO_ICMP), nonBlocking: true)
        let pinger = try WitnessPinger(target: loopback)
        pinger.ping(now: 1234)
        // The request as anyone on the path sees it: identifier, sequence, token.
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<100 where request.isEmpty {
            usleep(1000)
            while let count = buffer.withUnsafeMutableBytes({ try? sniffer.receive(into: $0) }) ?? nil {
                let icmp = Array(buffer[20..<count])
                if icmp.count >= 24, icmp[0] == 8 { request = icmp }
            }
        }
        #expect(!request.isEmpty)
        var answered: Int?
        for _ in 0..<100 where answered == nil {
            usleep(1000)
            answered = pinger.answered()
        }
        #expect(answered == 1234)  // the kernel's own answer
        func reply(sequenceOffset: UInt8 = 0, time: UInt64) -> [UInt8] {
            var message = [0, 0, 0, 0] + Array(request[4..<16])
            message[7] &+= sequenceOffset
            withUnsafeBytes(of: time.bigEndian) { message += $0 }
            let sum = PacketBuilder.internetChecksum(message)
            message[2] = UInt8(sum >> 8)
            message[3] = UInt8(sum & 0xFF)
            return message
        }
        for forged in [reply(time: UInt64(Int64.max)), reply(sequenceOffset: 1, time: 5000)] {
            sniffer.send(forged, to: loopback, port: 0)
        }
        usleep(20_000)
        #expect(pinger.answered() == nil)
    }
}

/// The heartbeat socket's kernel filter on loopback: size, magic, TTL 255, the source, and a pinned incarnation.
struct HeartbeatFilterTests {
    static func datagram(magic: String = "VFHB", incarnation: UInt64, size: Int = 80) -> [UInt8] {
        var bytes = Array(magic.utf8) + [UInt8](repeating: 0, count: size - 4)
        withUnsafeBytes(of: incarnation.bigEndian) { bytes.replaceSubrange(16..<24, with: $0) }
        return bytes
    }

    @Test func onlyHeartbeatShapedDatagramsWithThePinnedIncarnationPass() throws {
        let loopback = IPAddress("127.0.0.1")!
        let port = UInt16.random(in: 40000...60000)
        let filter = DatagramFilter(
            payloadSizes: 80...200, magic: 0x5646_4842, sources: [loopback], pinnedOffset: 16)
        let socket = try HeartbeatSocket(bindTo: loopback, port: port, filter: filter)
        let sender = try Socket(family: AF_INET, type: SOCK_DGRAM)
        try sender.setOption(Int32(IPPROTO_IP), IP_TTL, 255, "send with TTL 255")
        var sizes: [Int] = []
        func received(after datagrams: [[UInt8]]) -> Int {
            for datagram in datagrams { sender.send(datagram, to: loopback, port: port) }
            var count = 0
            while socket.wait(timeoutMicroseconds: 50_000) {
                let taken = socket.receiveBatch { sizes.append($0.bytes.count) }
                if taken == 0 { break }
                count += taken
            }
            return count
        }
        // Unpinned: any incarnation; never a size out of the range or another magic. The largest arrives whole.
        #expect(
            received(after: [
                Self.datagram(incarnation: 1), Self.datagram(incarnation: 2, size: 200),
                Self.datagram(magic: "XXXX", incarnation: 1),
                Self.datagram(incarnation: 1, size: 79), Self.datagram(incarnation: 1, size: 201),
            ]) == 2)
        #expect(sizes == [80, 200])
        // Pinned to incarnation 2: a flood with another one stays in the kernel.
        try socket.attach(filter.pinning([loopback: 2]))
        #expect(received(after: [Self.datagram(incarnation: 1), Self.datagram(incarnation: 2)]) == 1)
        #expect(received(after: [Self.datagram(incarnation: 0x0000_0002_0000_0000)]) == 0)
    }

    /// A dying lbnode's descriptors are released from the highest down, and its packet sockets, tcx links and TAP
    /// each wait for an RCU grace period there (60 ms in all on a 2-core VM). The heartbeat socket sits above every
    /// descriptor opened after it, so it closes first and a peer's next heartbeat meets port unreachable.
    @Test func theHeartbeatSocketSitsAboveTheDescriptorsOpenedAfterIt() throws {
        let loopback = IPAddress("127.0.0.1")!
        let filter = DatagramFilter(payloadSizes: 80...80, magic: 0x5646_4842, sources: [loopback], pinnedOffset: 16)
        let heartbeat = try HeartbeatSocket(
            bindTo: loopback, port: UInt16.random(in: 40000...60000), filter: filter)
        let later = try Socket(family: AF_INET, type: SOCK_DGRAM)
        var pipeEnds: [Int32] = [-1, -1]
        #expect(pipe(&pipeEnds) == 0)
        defer { pipeEnds.forEach { close($0) } }
        #expect(heartbeat.fd > max(later.descriptor, pipeEnds[0], pipeEnds[1]))
        var limit = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        if limit.rlim_cur >= 1024 { #expect(heartbeat.fd >= 1023) }
    }

    /// A heartbeat refused by a port nobody listens on (a dead peer) leaves its ICMP error pending on the socket; the
    /// next heartbeat, to a live peer, still goes out (the kernel fails the first send after the error once), and the
    /// refusal is there to take.
    @Test func aRefusedHeartbeatNeitherStopsTheNextOneNorGoesUnseen() throws {
        let loopback = IPAddress("127.0.0.1")!
        let port = UInt16.random(in: 40000...60000)
        let filter = DatagramFilter(payloadSizes: 80...80, magic: 0x5646_4842, sources: [loopback], pinnedOffset: 16)
        let sender = try HeartbeatSocket(bindTo: loopback, port: port, filter: filter)
        let live = try HeartbeatSocket(bindTo: loopback, port: port + 1, filter: filter)
        let heartbeat = Self.datagram(incarnation: 1)
        #expect(sender.send(heartbeat, to: loopback, port: port + 2) == .sent)  // nobody listens there
        usleep(20_000)
        #expect(sender.send(heartbeat, to: loopback, port: port + 1) == .sent)
        #expect(live.wait(timeoutMicroseconds: 500_000) && live.receiveBatch { _ in } == 1)
        let refusals = sender.takeRefusals()
        #expect(refusals == [HeartbeatSocket.Refusal(peer: loopback, quoted: heartbeat)])
    }
}
