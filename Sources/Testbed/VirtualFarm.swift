import Foundation
import Hashing
import RouteSetup
import TapEngine

/// A farm on a testbed: every server namespace runs `lbnode run` (a child process, started by PID and ended by PID)
/// and the echo application; clients reach the VIP through the switch. The demo, the failover benchmark, the
/// scenarios and the end-to-end tests all drive this one harness.
public final class VirtualFarm {
    public struct Options {
        public var testbed = VirtualNetwork.Description(servers: 3, clients: 1)
        public var delivery: DeliverySetting = .fixed(.directed)
        public var vip = "198.18.0.100"
        /// `farm.heartbeat_interval_ms` and `farm.dead_after` of every node (nil: left out, so lbnode's defaults).
        public var heartbeatIntervalMilliseconds: Int?
        public var deadAfter: Int?
        /// The farm's heartbeat interval and deadline in ms, lbnode's defaults (4 ms × 4) where left out.
        public var heartbeat: (intervalMilliseconds: Int, deadlineMilliseconds: Int) {
            let interval = heartbeatIntervalMilliseconds ?? 4
            return (interval, interval * (deadAfter ?? 4))
        }
        /// `node.prefilter` of every node.
        public var prefilter = true
        /// `node.kernel_delivery` of every node.
        public var kernelDelivery = true
        /// `node.engine_threads` of every node (nil: the default, `auto`).
        public var engineThreads: Int? = nil
        /// Environment variables for a node's `lbnode run` (e.g. systemd's `NOTIFY_SOCKET`), by node number.
        public var environment: [Int: [String: String]] = [:]
        /// Extra arguments for a node's `lbnode run` (e.g. `--lone-wait 2`), by node number.
        public var extraArguments: [Int: [String]] = [:]
        /// Extra YAML lines for a node's configuration (e.g. a `checkers:` section), by node number.
        public var extraConfig: [Int: String] = [:]
        /// The nodes that start with the farm; the others can be started later (a join).
        public var startNodes: Set<Int>? = nil
        /// Debian's nginx and an iperf3 server on every server (`applications`), and a rule that keeps each
        /// client's iperf3 connections (control and data) on one node.
        public var realApplications = false
        /// `farm.witness`: an address every node pings while it does not hear every peer.
        public var witness: String? = nil
        /// `farm.handover_seconds` of every node (nil: left out, so lbnode's default, 30 s).
        public var handoverSeconds: Int? = nil
        /// Servers configured on every peer but absent from the network from the start (not installed yet, powered
        /// off for good): their cable is cut before any node starts, so nothing ever answers ARP for them.
        public var absentServers: Set<Int> = []

        public init(
            testbed: VirtualNetwork.Description = .init(servers: 3, clients: 1),
            delivery: DeliverySetting = .fixed(.directed),
            vip: String = "198.18.0.100", heartbeatIntervalMilliseconds: Int? = nil, deadAfter: Int? = nil,
            extraConfig: [Int: String] = [:], startNodes: Set<Int>? = nil, realApplications: Bool = false
        ) {
            self.testbed = testbed
            self.delivery = delivery
            self.vip = vip
            self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
            self.deadAfter = deadAfter
            self.extraConfig = extraConfig
            self.startNodes = startNodes
            self.realApplications = realApplications
        }
    }

    public static let echoPort: UInt16 = 9000

    public let options: Options
    public let testbed: VirtualNetwork
    public let vip: IPAddress
    public let directory = NSTemporaryDirectory() + "vipfarm-farm-\(VirtualNetwork.randomID())"
    public let keyBytes = (0..<32).map { _ in UInt8.random(in: 0...255) }
    /// The `lbnode` of each server, by node number.
    public let processes = ChildProcesses()
    private var echoServers: [EchoServer] = []
    /// nginx and iperf3 on every server, with `Options.realApplications`.
    public private(set) var applications: ApplicationServers?

    /// `lbnode`, next to the running executable (`.build/<configuration>/`).
    public static var lbnodePath: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("lbnode").path
    }

    /// Builds the testbed, writes each node's configuration, starts the echo servers and the first nodes. On
    /// failure everything started is stopped and removed again.
    public init(_ options: Options = Options()) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.lbnodePath) else {
            throw FarmError("lbnode not found at \(Self.lbnodePath): build both with `swift build` (or -c release)")
        }
        guard let vip = IPAddress(options.vip) else { throw FarmError("bad VIP \(options.vip)") }
        self.options = options
        self.vip = vip
        testbed = try VirtualNetwork(options.testbed)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(keyBytes).write(to: URL(fileURLWithPath: directory + "/key"))
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/key")
            for server in testbed.servers {
                try configuration(for: server).write(
                    toFile: configPath(server.number), atomically: true, encoding: .utf8)
                echoServers.append(
                    try EchoServer.started(in: server.namespace, id: server.number, vip: vip, port: Self.echoPort))
            }
            if options.realApplications {
                applications = try ApplicationServers(on: testbed, vip: vip, directory: directory + "/applications")
            }
            for number in options.absentServers.sorted() {
                try setLink(number, up: false)
            }
            for number in startedNodes {
                try start(number)
            }
        } catch {
            stop()
            throw error
        }
    }

    deinit {
        stop()
    }

    public func configPath(_ number: Int) -> String { "\(directory)/n\(number).yaml" }
    public func socketPath(_ number: Int) -> String { "\(directory)/n\(number).sock" }

    /// The view of every node at weight 100, as the logs write it: "{1:100, 2:100, 3:100}".
    public var fullView: String { Self.view(testbed.servers.map(\.number)) }

    /// The nodes that start with the farm (`Options.startNodes`), in order.
    public var startedNodes: [Int] { (options.startNodes ?? Set(testbed.servers.map(\.number))).sorted() }

    /// The view of the nodes that start with the farm.
    public var startedView: String { Self.view(startedNodes) }

    /// The view of `nodes` at weight 100, as the logs write it.
    public static func view(_ nodes: [Int]) -> String {
        "{" + nodes.map { "\($0):100" }.joined(separator: ", ") + "}"
    }
    public func logPath(_ number: Int) -> String { "\(directory)/log\(number)" }

    private func configuration(for server: VirtualNetwork.Host) -> String {
        let peers = testbed.servers.filter { $0.number != server.number }
            .map { "  - { id: \($0.number), address: \($0.address.address) }" }.joined(separator: "\n")
        let farmOptions = [
            options.heartbeatIntervalMilliseconds.map { "heartbeat_interval_ms: \($0)" },
            options.deadAfter.map { "dead_after: \($0)" }, options.witness.map { "witness: \($0)" },
            options.handoverSeconds.map { "handover_seconds: \($0)" },
        ].compactMap { $0.map { "\n  \($0)" } }.joined()
        return """
            farm:
              name: vfarm
              vip: \(options.vip)
              delivery: \(options.delivery)
              key_file: \(directory)/key\(farmOptions)
            node: { id: \(server.number), interface: \(testbed.hostInterface), address: \(server.address.address)\
            \(options.prefilter ? "" : ", prefilter: off")\(options.kernelDelivery ? "" : ", kernel_delivery: off")\
            \(options.engineThreads.map { ", engine_threads: \($0)" } ?? "") }
            control_socket: \(socketPath(server.number))
            peers:
            \(peers)

            """ + (options.realApplications ? Self.iperfRules : "") + (options.extraConfig[server.number] ?? "")
    }

    /// iperf3 opens a control connection and data connections from different ports: one node must get them all.
    static let iperfRules = """
        rules:
          - { protocol: any, ports: "\(ApplicationServers.iperfPort)", mode: balanced, affinity: single }

        """

    /// Starts `lbnode run` in server `number`'s namespace; its standard error goes to `logPath(number)`.
    public func start(_ number: Int) throws {
        try processes.start(
            number, in: testbed.servers[number - 1].namespace, executable: Self.lbnodePath,
            arguments: [
                "run", "--config", configPath(number), "--state-dir", "\(directory)/state\(number)",
                "--memory-dir", "\(directory)/memory\(number)",
                "--exit-with-parent",
            ] + (options.extraArguments[number] ?? []),
            log: logPath(number), environment: options.environment[number] ?? [:])
    }

    /// Runs `lbnode probe --json` on the servers `nodes` (default: every one; no lbnode may run), each `startGap`
    /// seconds after the one before (people start it by hand); the output and exit status of each, by node.
    public func probe(
        seconds: Int = 2, nodes: [Int]? = nil, startGap: Double = 0, peerWait: Int? = nil
    ) -> [Int: (output: String, status: Int32)] {
        let numbers = nodes ?? testbed.servers.map(\.number)
        for (index, number) in numbers.enumerated() {
            if index > 0 && startGap > 0 { Thread.sleep(forTimeInterval: startGap) }
            try? processes.start(
                1000 + number, in: testbed.servers[number - 1].namespace, executable: Self.lbnodePath,
                arguments: ["probe", "--config", configPath(number), "--json", "--seconds", "\(seconds)"]
                    + (peerWait.map { ["--peer-wait", "\($0)"] } ?? []),
                log: "\(directory)/probe\(number)")
        }
        var outputs: [Int: (output: String, status: Int32)] = [:]
        for number in numbers {
            processes.waitForExit(1000 + number)
            outputs[number] = (
                (try? String(contentsOfFile: "\(directory)/probe\(number)", encoding: .utf8)) ?? "",
                processes.exitStatus(1000 + number) ?? -1
            )
        }
        return outputs
    }

    /// Restarts node `number`'s lbnode as `systemctl restart` does: SIGTERM, then, once it has exited, started again.
    public func restart(_ number: Int) throws {
        signal(number, SIGTERM)
        waitForExit(number)
        try start(number)
    }

    /// Sends `signal` to node `number`'s lbnode, by its PID.
    public func signal(_ number: Int, _ signal: Int32) {
        processes.signal(number, signal)
    }

    /// Waits for node `number`'s lbnode to exit (after a drain or a signal).
    public func waitForExit(_ number: Int) {
        processes.waitForExit(number)
    }

    /// Cuts (or restores) node `number`'s cable: its port on the switch goes down, and with it the carrier of the
    /// server's interface.
    public func setLink(_ number: Int, up: Bool) throws {
        try testbed.setCable(ofServer: number, up: up)
    }

    /// Ends every lbnode (SIGTERM, by PID; a frozen one is thawed first), the echo servers and the testbed, and
    /// removes the farm's files. Safe to call twice.
    public func stop() {
        processes.stopAll(with: SIGTERM)
        for server in echoServers { server.stop() }
        echoServers = []
        applications?.stop()
        applications = nil
        testbed.down()
        try? FileManager.default.removeItem(atPath: directory)
    }

    public func log(_ number: Int) -> String {
        (try? String(contentsOfFile: logPath(number), encoding: .utf8)) ?? ""
    }

    /// How many lines each server's node has logged so far, for `events(since:)`.
    public func logLengths() -> [Int: Int] {
        Dictionary(
            uniqueKeysWithValues: testbed.servers.map { ($0.number, log($0.number).split(separator: "\n").count) })
    }

    /// The view changes, warnings and errors the nodes logged after `lengths` (`logLengths`), each as "node N: line":
    /// what a benchmark shows when a measurement went wrong.
    public func events(since lengths: [Int: Int]) -> [String] {
        testbed.servers.map(\.number).flatMap { node in
            log(node).split(separator: "\n").dropFirst(lengths[node] ?? 0)
                .filter { Self.isViewChange($0) || $0.contains(" warning ") || $0.contains(" error ") }
                .map { "node \(node): \($0)" }
        }
    }

    /// Every node's log, each under a "--- node N" line: what a failed test shows.
    public var logs: String {
        testbed.servers.map { "--- node \($0.number)\n\(log($0.number))" }.joined(separator: "\n")
    }

    /// Whether a log line is a node's view change (`lbnode[farm/1]: view {1:100} -> {1:100, 2:100}`). Other lines
    /// may speak of views too (a slow turn's warning says "outside a view change"): they are not one.
    public static func isViewChange(_ line: some StringProtocol) -> Bool { line.contains("]: view ") }

    /// The view in node `number`'s last view line, e.g. "{1:100, 2:100}".
    public func lastView(_ number: Int) -> String? {
        guard let line = log(number).split(separator: "\n").last(where: Self.isViewChange),
            let arrow = line.range(of: "-> ", options: .backwards)
        else { return nil }
        return String(line[arrow.upperBound...])
    }

    /// Waits until the last view line of every node in `nodes` shows `view`, then for the engines to take the new
    /// state (the log line comes first; the engine swaps at its next batch) and for one director keepalive (200 ms).
    public func waitForView(_ view: String, nodes: [Int], seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if nodes.allSatisfy({ lastView($0) == view }) {
                Thread.sleep(forTimeInterval: 0.25)
                return true
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// Waits until no node of `nodes` is in a handover window any more: a join leaves one (`handoverSeconds`, by
    /// default 30 s), during which the moved buckets' connections go through the engines, and only after it are they
    /// all in steady ownership, which the kernel delivers. False after `seconds` (default: the window and 10 s; a
    /// failover opens no window, so a farm that has had one waits out the time).
    public func waitForHandoversToEnd(nodes: [Int], seconds: Double? = nil) -> Bool {
        let deadline = Date().addingTimeInterval(seconds ?? Double((options.handoverSeconds ?? 30) + 10))
        while Date() < deadline {
            let steady = nodes.allSatisfy { number in
                let lines = log(number).split(separator: "\n")
                guard let over = lines.lastIndex(where: { $0.contains("handover window over") }) else { return false }
                return over > (lines.lastIndex(where: Self.isViewChange) ?? -1)
            }
            if steady {
                Thread.sleep(forTimeInterval: 0.1)  // the engines take the state at their next batch
                return true
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    /// Runs an lbnode client command (status, drain) against node `number`'s control socket, as root or as `user`;
    /// its standard output.
    public func control(_ arguments: [String], node number: Int, asUser user: UInt32? = nil) throws -> String {
        let process = Process()
        let output = Pipe()
        let command = [Self.lbnodePath] + arguments + ["--socket", socketPath(number)]
        if let user {  // that user and its own group only (setpriv, of util-linux); what it says to stderr too
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups"] + command
            process.standardError = output
        } else {
            process.executableURL = URL(fileURLWithPath: Self.lbnodePath)
            process.arguments = Array(command.dropFirst())
        }
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }

    /// Sends datagram `i` (its decimal text) from client port `firstPort + i` for `count` ports, and returns the
    /// request numbers each server answered, by server.
    public func exchange(count: Int, client number: Int = 1, firstPort: UInt16 = 20000) throws -> [Int: [Int]] {
        let client = testbed.clients[number - 1]
        let source = IPAddress(bytes: (vip.isIPv4 ? client.address : client.address6 ?? client.address).bytes)!
        let queueDropsBefore = try udpQueueDrops()
        let sockets = try client.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                // One request first, answered, so that the client has resolved the VIP by ARP: until it has, the
                // kernel queues only ~256 datagrams for it and drops the rest of a burst.
                let warmUp = try DatagramSocket(bindTo: source, port: 0)
                try warmUp.send(Array("warm-up".utf8), to: vip, port: Self.echoPort)
                _ = try warmUp.receive(timeoutMilliseconds: 1000)
                var sockets: [DatagramSocket] = []
                for index in 0..<count {
                    sockets.append(try DatagramSocket(bindTo: source, port: firstPort + UInt16(index)))
                    try sockets[index].send(Array(String(index).utf8), to: vip, port: Self.echoPort)
                }
                return sockets
            }
        }.get()
        // Collects until every request is answered (or a second has passed), then once more for late duplicates.
        var answered: [Int: [Int]] = [:]
        let deadline = Date().addingTimeInterval(1)
        var total = 0
        for pass in 0... {
            for socket in sockets {
                while let reply = try socket.receive(timeoutMilliseconds: 0),
                    let (server, payload) = EchoServer.parseReply(reply),
                    let index = Int(String(decoding: payload, as: UTF8.self))
                {
                    answered[server, default: []].append(index)
                    total += 1
                }
            }
            if pass > 0 && (total >= count || Date() >= deadline) { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        if total < count {
            let queueDrops = try udpQueueDrops().map { ($0.key, $0.value - (queueDropsBefore[$0.key] ?? 0)) }
            print(
                "exchange: \(count - total) of \(count) unanswered; dropped at a server's full UDP socket queue: "
                    + "\(queueDrops.sorted { $0.0 < $1.0 }.map { "node \($0.0): \($0.1)" }.joined(separator: ", "))")
        }
        return answered
    }

    /// Per server: the datagrams its kernel dropped because a UDP socket's queue was full (`RcvbufErrors` in its
    /// namespace's /proc/net/snmp): requests the farm delivered and the application never read.
    public func udpQueueDrops() throws -> [Int: Int] {
        var drops: [Int: Int] = [:]
        for server in testbed.servers {
            let text = try server.namespace.run { () throws(NetlinkError) in procFile("/proc/thread-self/net/snmp") }
            let lines = text.split(separator: "\n").filter { $0.hasPrefix("Udp: ") }.map { $0.split(separator: " ") }
            guard lines.count == 2, let column = lines[0].firstIndex(of: "RcvbufErrors") else { continue }
            drops[server.number] = Int(lines[1][column])
        }
        return drops
    }

    /// Opens `count` TCP connections from client `number` to the VIP's echo port.
    public func connect(count: Int, client number: Int = 1) throws -> [StreamConnection] {
        try testbed.clients[number - 1].namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) in
                var connections: [StreamConnection] = []
                for _ in 0..<count { connections.append(try StreamConnection(to: vip, port: Self.echoPort)) }
                return connections
            }
        }.get()
    }
}

/// A farm that could not be built or driven.
public struct FarmError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
