import Foundation
import Hashing
import RouteSetup
import TapEngine

/// The reference for failover: keepalived (VRRPv3) as an active/passive pair on a testbed, each server with the echo
/// application. Server 1 (priority 150) holds the VIP; server 2 (100) takes it when server 1's advertisements stop.
public final class KeepalivedPair {
    public let testbed: VirtualNetwork
    public let vip = IPAddress("198.18.0.100")!
    public let directory = NSTemporaryDirectory() + "vipfarm-keepalived-\(VirtualNetwork.randomID())"
    private let processes = ChildProcesses()
    private var echoServers: [EchoServer] = []

    public static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/keepalived") }

    /// - Parameter advertisementSeconds: VRRP's advert_int (keepalived accepts 0.01 and up with VRRPv3; the default is
    ///   1). Server 2 declares server 1 dead after 3 intervals plus a skew of (256 - 100) / 256 of one.
    public init(advertisementSeconds: Double) throws {
        guard Self.installed else {
            throw FarmError("keepalived is not installed: `apt-get install keepalived` (make setup does it)")
        }
        testbed = try VirtualNetwork(.init(servers: 2, clients: 1))
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for server in testbed.servers {
                let priority = server.number == 1 ? 150 : 100
                let config = """
                    global_defs {
                        vrrp_version 3
                        script_user root
                    }
                    vrrp_instance lbbench {
                        state BACKUP
                        interface \(VirtualNetwork.hostInterface)
                        virtual_router_id 51
                        priority \(priority)
                        advert_int \(advertisementSeconds)
                        virtual_ipaddress {
                            \(vip)/32 dev \(VirtualNetwork.hostInterface)
                        }
                    }

                    """
                let path = "\(directory)/k\(server.number).conf"
                try config.write(toFile: path, atomically: true, encoding: .utf8)
                echoServers.append(
                    try EchoServer.started(
                        in: server.namespace, id: server.number, vip: vip, port: VirtualFarm.echoPort))
                try processes.start(
                    server.number, in: server.namespace, executable: "/usr/sbin/keepalived",
                    arguments: [
                        "--dont-fork", "--log-console", "--vrrp", "--use-file", path,
                        "--pid", "\(directory)/k\(server.number).pid", "--vrrp_pid",
                        "\(directory)/v\(server.number).pid",
                    ], log: "\(directory)/log\(server.number)")
            }
        } catch {
            stop()
            throw error
        }
    }

    deinit {
        stop()
    }

    /// Waits until server 1 holds the VIP and answers the client.
    public func waitUntilServing(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let answered = try? exchangeOne(), answered == 1 { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    /// One request from the client; the server that answered.
    private func exchangeOne() throws -> Int? {
        let client = testbed.clients[0]
        return try client.namespace.run { () throws(NetlinkError) in
            Result { () throws(SystemCallError) -> Int? in
                let socket = try DatagramSocket(bindTo: client.ip, port: 0)
                try socket.send(Array("ping".utf8), to: vip, port: VirtualFarm.echoPort)
                return try socket.receive(timeoutMilliseconds: 200).flatMap { EchoServer.parseReply($0)?.server }
            }
        }.get()
    }

    /// Signals server `number`'s VRRP process, the child keepalived started (its PID from the `--vrrp_pid` file): it
    /// is the one that advertises. Killing only the parent would not do: the child, told of its parent's death,
    /// stops gracefully and hands over at once with a priority-0 advertisement.
    public func signal(_ number: Int, _ signal: Int32) {
        let pidFile = "\(directory)/v\(number).pid"
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let child = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), child > 0
        {
            kill(child, signal)
        }
        if signal == SIGKILL { processes.signal(number, SIGKILL) }
    }

    /// Ends keepalived (by PID; a frozen one is thawed first), the echo servers and the testbed.
    public func stop() {
        processes.stopAll(with: SIGKILL)
        for server in echoServers { server.stop() }
        echoServers = []
        testbed.down()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
