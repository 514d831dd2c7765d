import Foundation
import TapEngine
import Testing

@testable import Testbed

/// A node that gives buckets away in a handover first learns the connections the kernel delivered in them, by reading
/// every open TCP socket of its host (sock_diag, as `ss` does). On a busy server that read outlasts a heartbeat
/// deadline; the heartbeat loop must go on meanwhile, and announce the release only once the read is done.
@Suite(privileged, .serialized)
struct BusyServerHandoverTests {
    /// Holds `pairs` TCP connections to and from `address` (twice as many sockets with `address` as their local
    /// address) until its parent exits; prints "ready" and their count.
    static let socketHolder = """
        import os, resource, socket, sys, time
        parent = os.getppid()
        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
        listener = socket.socket()
        listener.bind((sys.argv[2], 0))
        listener.listen(4096)
        held = []
        for _ in range(int(sys.argv[1])):
            held.append(socket.create_connection(listener.getsockname()))
            held.append(listener.accept()[0])
        print("ready", len(held), flush=True)
        while os.getppid() == parent:
            time.sleep(0.5)
        """

    /// Nodes 1 and 2 serve in flood delivery, the first to be active with 39,600 sockets of the VIP (connections
    /// from the host to itself: the kernel lists them as it lists clients'); node 3 joins, and both give it buckets.
    /// At the suites' 20 ms × 5, a loop that waited for the busy node's read would fence it as stalled and its peers
    /// would declare it dead.
    @Test func aServerWithFortyThousandSocketsGivesBucketsAwayWithoutStalling() throws {
        let farm = try FarmEndToEndTests.farm {
            $0.startNodes = [1, 2]
            $0.delivery = .fixed(.flood)
        }
        defer { farm.stop() }
        #expect(farm.waitForView("{1:100, 2:100}", nodes: [1, 2]), "\(farm.log(1))")
        // The node active first keeps half its buckets when the other joins: steady, so the kernel delivers them,
        // and it reads its sockets when it gives some to node 3. The other's are in the join's handover window (the
        // engine's): it gives them away without a read.
        let first = try #require(Self.firstActive(in: farm.log(1)), "\(farm.log(1))")
        let other = 3 - first

        // Two processes: the container allows 20,000 descriptors to one. (More sockets stall every node in this debug
        // build, not only the busy one: a node that starts reads its own namespace's connections, and the kernel walks
        // every socket of the host for it.)
        let holders = ChildProcesses()
        defer { holders.stopAll(with: SIGKILL) }
        let namespace = farm.testbed.servers[first - 1].namespace
        let logs = (1...2).map { "\(farm.directory)/sockets\($0)" }
        for (index, log) in logs.enumerated() {
            try holders.start(
                index, in: namespace, executable: "/usr/bin/python3",
                arguments: ["-c", Self.socketHolder, "9900", farm.options.vip],
                log: log)
        }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && !logs.allSatisfy({ Self.contents($0).contains("ready 19800") }) {
            Thread.sleep(forTimeInterval: 0.2)
        }
        try #require(logs.allSatisfy { Self.contents($0).contains("ready 19800") }, "\(logs.map(Self.contents))")
        let vip = farm.vip
        let read = try namespace.run {
            ContinuousClock().measure { _ = try? TCPConnections.list(localAddress: vip) }
        }
        #expect(read >= .milliseconds(150), "the read took \(read): the test no longer shows anything")

        let connections = try farm.connect(count: 60)
        let owners = FarmEndToEndTests.requests(connections, "before")
        #expect(Set(owners) == [.answered(server: 1), .answered(server: 2)], "\(owners)")
        let logged = (1...2).map { farm.log($0).count }
        try farm.start(3)
        #expect(farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3], seconds: 10), "\(farm.logs)")
        #expect(FarmEndToEndTests.requests(connections, "joined") == owners, "\(farm.logs)")
        // Node 3 takes what the other node gave it as soon as that node runs the new view and the busy one still
        // runs the one before; what the busy node gave it waits for its read (0.2 s or more in this debug build), and
        // the busy node serves it meanwhile.
        let taken = Date().addingTimeInterval(10)
        while Date() < taken && !farm.log(3).contains("every peer agrees") { Thread.sleep(forTimeInterval: 0.05) }
        let log3 = farm.log(3)
        let partly = log3.range(of: "took the held buckets of node(s) \(other): they let them go")
        let wholly = log3.range(of: "took the held buckets: every peer agrees")
        #expect(partly != nil && wholly != nil && partly!.lowerBound < wholly!.lowerBound, "\(farm.logs)")
        FarmEndToEndTests.expectExactlyOnce(try farm.exchange(count: 300), count: 300, by: [1, 2, 3])
        for (index, number) in (1...2).enumerated() {
            let since = String(farm.log(number).dropFirst(logged[index]))
            for word in ["stalled", "is dead", "fenced"] {
                #expect(!since.contains(word), "node \(number): \(since)")
            }
        }
        #expect(!farm.log(3).contains("is dead"), "\(farm.log(3))")
    }

    /// The node of the first view a log names ("view {} -> {2:100}").
    private static func firstActive(in log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("view {} -> {") }) else { return nil }
        return Int(line.split(separator: "{").last?.prefix { $0.isNumber } ?? "")
    }

    private static func contents(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}
