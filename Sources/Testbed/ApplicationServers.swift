import Foundation
import RouteSetup

/// Real applications on a testbed's servers, as a user runs them behind the VIP: Debian's nginx (an HTTP page that
/// names its server) and an iperf3 server, each a child process in the server's namespace, ended by its PID.
///
/// Both listen on the wildcard address, so they answer through the VIP (once `lbnode` holds it) and on the server's
/// own address (the direct reference of `lbbench apps`).
public final class ApplicationServers {
    public static let httpPort: UInt16 = 80
    public static let iperfPort: UInt16 = 5201
    public static let nginxPath = "/usr/sbin/nginx"
    public static let iperfPath = "/usr/bin/iperf3"

    private let nginx = ChildProcesses()
    private let iperf = ChildProcesses()
    private let directory: String

    /// Starts nginx and `iperf3 -s` on every server of `testbed`; their logs and nginx's files go to `directory`.
    /// On failure, what was started is ended again.
    public init(on testbed: VirtualNetwork, directory: String) throws {
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
                try iperf.start(
                    server.number, in: server.namespace, executable: Self.iperfPath,
                    arguments: ["-s", "-p", "\(Self.iperfPort)"], log: "\(directory)/iperf\(server.number).log")
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
        iperf.stopAll(with: SIGKILL)
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
                Self.listens(on: Self.httpPort) && Self.listens(on: Self.iperfPort)
            }) {
                guard Date() < deadline else {
                    throw FarmError("server \(server.number): nginx or iperf3 did not start (logs in \(directory))")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// Whether a TCP socket listens on `port` in the calling thread's namespace (state 0A in /proc/net/tcp{,6}).
    static func listens(on port: UInt16) -> Bool {
        let hexPort = String(format: ":%04X ", port)
        return ["tcp", "tcp6"].contains { table in
            let text = procFile("/proc/thread-self/net/\(table)")
            return text.split(separator: "\n").contains { line in
                let fields = line.split(separator: " ")
                return fields.count > 3 && fields[1].hasSuffix(hexPort.dropLast()) && fields[3] == "0A"
            }
        }
    }
}

/// The text of a /proc file (they report size 0, so they are read until the end, not by their size).
public func procFile(_ path: String) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}
