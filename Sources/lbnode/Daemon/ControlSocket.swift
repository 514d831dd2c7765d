import Foundation
import Glibc

/// The daemon's Unix stream socket (mode 0600): a client connects, sends one command line, and reads one JSON answer.
/// A thread of its own accepts, so the heartbeat loop never waits for a client.
final class ControlServer: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let handler: @Sendable (String) -> Data
    private var thread: Thread?

    /// Binds `path` (replacing a stale socket file) and starts answering with `handler`.
    init(path: String, handler: @escaping @Sendable (String) -> Data) throws {
        self.path = path
        self.handler = handler
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true)
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        let bound = ControlServer.withAddress(path) { bind(fd, $0, $1) }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ControlError("control socket \(path): \(message)")
        }
        let thread = Thread { [self] in serve() }
        thread.name = "vipfarm-control"
        self.thread = thread
        thread.start()
    }

    deinit {
        close(fd)
        unlink(path)
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = recv(client, &buffer, buffer.count, 0)
            let command = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
            let answer = handler(command.trimmingCharacters(in: .whitespacesAndNewlines))
            _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
    }

    /// Sends `command` to the daemon at `path` and returns its answer.
    static func request(_ command: String, path: String) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard withAddress(path, { connect(fd, $0, $1) }) == 0 else {
            throw ControlError(
                "cannot reach lbnode at \(path): \(String(cString: strerror(errno))) "
                    + "(is `lbnode run` running, and are you root?)")
        }
        _ = Array((command + "\n").utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            answer.append(contentsOf: buffer[0..<count])
        }
        return answer
    }

    private static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107)) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}

struct ControlError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
