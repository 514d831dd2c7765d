import Foundation
import Glibc
import TapEngine

/// The daemon's Unix stream socket (mode 0600): a client connects, sends one command line, and reads one JSON answer.
/// Clients are served on threads of their own with a timeout (`StreamServer`), so the heartbeat loop never waits for
/// one and an idle client blocks nobody.
final class ControlServer: @unchecked Sendable {
    let path: String
    private let server: StreamServer

    /// Binds `path` (replacing a stale socket file) and starts answering with `handler`, which is given the command
    /// line and the client's credentials.
    init(path: String, handler: @escaping @Sendable (String, StreamServer.Peer) -> Data) throws {
        self.path = path
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do {
            server = try StreamServer(
                unixPath: path, complete: { $0.contains(UInt8(ascii: "\n")) },
                handler: { request, peer in
                    let line = String(decoding: request, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    return Array(handler(line, peer))
                })
        } catch {
            throw ControlError("control socket \(path): \(error)")
        }
    }

    deinit {
        server.stop()
    }

    /// Sends `command` to the daemon at `path` and returns its answer.
    static func request(_ command: String, path: String) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard StreamServer.withUnixAddress(path, { connect(fd, $0, $1) }) == 0 else {
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
}

struct ControlError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
