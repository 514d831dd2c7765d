import Foundation
import Glibc
import RouteSetup

/// Serves `GET /metrics` in the Prometheus text format on `metrics_address` (loopback by default), from the status
/// snapshot the daemon refreshes every loop: the engine's counters, the members, the view, rejected heartbeats.
final class MetricsServer: @unchecked Sendable {
    private let fd: Int32
    private let snapshot: @Sendable () -> NodeStatus?
    private var thread: Thread?

    /// Listens on `address` ("127.0.0.1:9946", "[::1]:9946").
    init(address: String, snapshot: @escaping @Sendable () -> NodeStatus?) throws {
        self.snapshot = snapshot
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]),
            let host = IPPrefix(String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")))
        else { throw ControlError("metrics_address '\(address)' must be address:port") }
        fd = socket(host.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("metrics socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length: socklen_t = withUnsafeMutablePointer(to: &storage) { pointer in
            if host.isIPv4 {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    $0.pointee.sin_family = sa_family_t(AF_INET)
                    $0.pointee.sin_port = port.bigEndian
                    withUnsafeMutableBytes(of: &$0.pointee.sin_addr) { $0.copyBytes(from: host.bytes) }
                    return socklen_t(MemoryLayout<sockaddr_in>.size)
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                $0.pointee.sin6_family = sa_family_t(AF_INET6)
                $0.pointee.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &$0.pointee.sin6_addr) { $0.copyBytes(from: host.bytes) }
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ControlError("metrics on \(address): \(message) (change metrics_address?)")
        }
        let thread = Thread { [self] in serve() }
        thread.name = "vipfarm-metrics"
        self.thread = thread
        thread.start()
    }

    deinit {
        close(fd)
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            var buffer = [UInt8](repeating: 0, count: 2048)
            let count = recv(client, &buffer, buffer.count, 0)
            let request = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
            let response: String
            if request.hasPrefix("GET /metrics ") {
                let body = Self.render(snapshot())
                response =
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: "
                    + "\(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            } else {
                response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            _ = Array(response.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
    }

    /// The Prometheus text format of a status snapshot.
    static func render(_ status: NodeStatus?) -> String {
        guard let status else { return "# vipfarm: starting\n" }
        let labels = "farm=\"\(status.farm)\",node=\"\(status.node)\""
        var lines = [
            "# HELP vipfarm_view_generation Engine state generation (one per view change).",
            "# TYPE vipfarm_view_generation gauge",
            "vipfarm_view_generation{\(labels)} \(status.generation)",
            "# TYPE vipfarm_flows gauge",
            "vipfarm_flows{\(labels)} \(status.flows)",
            "# TYPE vipfarm_views_agree gauge",
            "vipfarm_views_agree{\(labels)} \(status.agreed ? 1 : 0)",
            "# HELP vipfarm_member_in_view Whether a member is in this node's view.",
            "# TYPE vipfarm_member_in_view gauge",
        ]
        for member in status.members {
            lines.append(
                "vipfarm_member_in_view{\(labels),member=\"\(member.id)\",state=\"\(member.state)\"} "
                    + "\(member.inView ? 1 : 0)")
        }
        lines.append("# TYPE vipfarm_member_buckets gauge")
        for member in status.members {
            lines.append("vipfarm_member_buckets{\(labels),member=\"\(member.id)\"} \(member.buckets)")
        }
        lines.append("# HELP vipfarm_engine_total Engine counters (frames).")
        lines.append("# TYPE vipfarm_engine_total counter")
        for (name, value) in status.engine.sorted(by: { $0.key < $1.key }) {
            lines.append("vipfarm_engine_total{\(labels),counter=\"\(name)\"} \(value)")
        }
        lines.append("# HELP vipfarm_offload_frames_total Received frames by the offload metadata they carried.")
        lines.append("# TYPE vipfarm_offload_frames_total counter")
        for (kind, value) in status.offloads.sorted(by: { $0.key < $1.key }) {
            lines.append("vipfarm_offload_frames_total{\(labels),kind=\"\(kind)\"} \(value)")
        }
        lines.append("# TYPE vipfarm_heartbeats_rejected_total counter")
        for (reason, value) in status.heartbeatsRejected.sorted(by: { $0.key < $1.key }) {
            lines.append("vipfarm_heartbeats_rejected_total{\(labels),reason=\"\(reason)\"} \(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
