import Foundation
import Hashing
import RouteSetup

/// Real applications on a testbed's servers, as a user runs them behind the VIP: Debian's nginx (an HTTP page that
/// names its server) and an iperf3 server, each a child process in the server's namespace, ended by its PID.
///
/// nginx listens on the wildcard address, so it answers through the VIP (once `lbnode` holds it) and on the server's
/// own address (the direct reference of `lbbench apps`). A UDP server must answer from the address a datagram came
/// to, and iperf3 does not: bound to the wildcard address, it answers from the server's own address, which the
/// client drops. So each server runs two iperf3 servers, one bound to the VIP (with `ip_nonlocal_bind`, since lbnode
/// may not have put the VIP up yet), one to the server's own address, as an operator runs UDP services behind a VIP
/// (docs/operations.md).
public final class ApplicationServers {
    public static let httpPort: UInt16 = 80
    public static let iperfPort: UInt16 = 5201
    public static let nginxPath = "/usr/sbin/nginx"
    public static let iperfPath = "/usr/bin/iperf3"

    private let nginx = ChildProcesses()
    private let iperfOnVIP = ChildProcesses()
    private let iperfOnOwnAddress = ChildProcesses()
    /// On a dual-stack testbed, the direct reference of an IPv6 VIP: the server's own IPv6 address.
    private let iperfOnOwnAddress6 = ChildProcesses()
    private let directory: String

    /// Starts nginx and the iperf3 servers on every server of `testbed`; their logs and nginx's files go to
    /// `directory`. On failure, what was started is ended again.
    public init(on testbed: VirtualNetwork, vip: IPAddress, directory: String) throws {
        for program in [Self.nginxPath, Self.iperfPath, Wrk.path] where !FileManager.default.isExecutableFile(atPath: program) {
            throw FarmError("\(program) is not installed: `make setup` installs nginx-light, iperf3 and wrk")
        }
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for server in testbed.servers {
                let configuration = "\(directory)/nginx\(server.number).conf"
                try Self.nginxConfiguration(server: server.number, directory: directory)
                    .write(toFile: configuration, atomically: true, encoding: .utf8)
                try nginx.start(
                    server.number, in: server.namespace, executable: Self.nginxPath,
                    arguments: ["-c", configuration, "-e", "\(directory)/nginx\(server.number).log"],
                    log: "\(directory)/nginx\(server.number).log")
                try server.namespace.run { () throws(NetlinkError) in
                    for family in ["ipv4", "ipv6"] { try Sysctl("net.\(family).ip_nonlocal_bind").write("1") }
                }
                var addresses = [(iperfOnVIP, "\(vip)"), (iperfOnOwnAddress, "\(server.address.address)")]
                if let address6 = server.address6 { addresses.append((iperfOnOwnAddress6, "\(address6.address)")) }
                for (children, address) in addresses {
                    try children.start(
                        server.number, in: server.namespace, executable: Self.iperfPath,
                        arguments: ["-s", "-B", "\(address)", "-p", "\(Self.iperfPort)"],
                        log: "\(directory)/iperf\(server.number)-\(address).log")
                }
            }
            try waitUntilListening(on: testbed)
        } catch {
            stop()
            throw error
        }
    }

    deinit {
        stop()
    }

    /// Ends nginx and iperf3 (by PID) and removes their files. Safe to call twice.
    public func stop() {
        nginx.stopAll(with: SIGKILL)  // nothing to save; nginx without a master ignores SIGTERM while it has clients
        iperfOnVIP.stopAll(with: SIGKILL)
        iperfOnOwnAddress.stopAll(with: SIGKILL)
        iperfOnOwnAddress6.stopAll(with: SIGKILL)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// One process, no daemon, no master: the testbed ends it by its PID. The page says which server answered.
    static func nginxConfiguration(server: Int, directory: String) -> String {
        """
        daemon off;
        master_process off;
        worker_processes 1;
        pid \(directory)/nginx\(server).pid;
        error_log \(directory)/nginx\(server).log warn;
        events { worker_connections 4096; }
        http {
            access_log off;
            client_body_temp_path \(directory)/body\(server);
            proxy_temp_path \(directory)/proxy\(server);
            fastcgi_temp_path \(directory)/fastcgi\(server);
            uwsgi_temp_path \(directory)/uwsgi\(server);
            scgi_temp_path \(directory)/scgi\(server);
            keepalive_requests 1000000;
            server {
                listen \(httpPort) reuseport backlog=4096;
                listen [::]:\(httpPort) reuseport backlog=4096;
                default_type text/plain;
                location / { return 200 "server \(server)\\n"; }
            }
        }

        """
    }

    /// nginx and iperf3 listen on every server within 5 s (both start in a few ms). Read from the kernel's socket
    /// table: iperf3 would take a probe connection for a test.
    private func waitUntilListening(on testbed: VirtualNetwork) throws {
        let deadline = Date().addingTimeInterval(5)
        for server in testbed.servers {
            while try !server.namespace.run({ () throws(NetlinkError) in
                Self.listeners(on: Self.httpPort) >= 1
                    && Self.listeners(on: Self.iperfPort) >= (server.address6 == nil ? 2 : 3)
            }) {
                guard Date() < deadline else {
                    throw FarmError("server \(server.number): nginx or iperf3 did not start (logs in \(directory))")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// How many TCP sockets listen on `port` in the calling thread's namespace (state 0A in /proc/net/tcp{,6}).
    static func listeners(on port: UInt16) -> Int {
        let hexPort = String(format: ":%04X", port)
        return ["tcp", "tcp6"].map { table in
            procFile("/proc/thread-self/net/\(table)").split(separator: "\n").filter { line in
                let fields = line.split(separator: " ")
                return fields.count > 3 && fields[1].hasSuffix(hexPort) && fields[3] == "0A"
            }.count
        }.reduce(0, +)
    }
}

/// The text of a /proc file (they report size 0, so they are read until the end, not by their size).
public func procFile(_ path: String) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}
