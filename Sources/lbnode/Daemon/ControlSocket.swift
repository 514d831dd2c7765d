import Foundation
import TapEngine

/// The daemon's Unix stream socket (mode 0600; 0660 and owned by `control_group` when one is set): a client connects,
/// sends one command line, and reads one JSON answer.
/// Clients are served on threads of their own with a timeout (`StreamServer`), so the heartbeat loop never waits for
/// one and an idle client blocks nobody.
final class ControlServer: @unchecked Sendable {
    let path: String
    private let server: StreamServer

    /// Binds `path` (replacing a stale socket file) and starts answering with `handler`, which is given the command
    /// line and the client's credentials.
    init(path: String, group: UInt32?, handler: @escaping @Sendable (String, StreamServer.Peer) -> Data) throws {
        self.path = path
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do {
            server = try StreamServer(
                unixPath: path, mode: group == nil ? 0o600 : 0o660, group: group,
                complete: { $0.contains(UInt8(ascii: "\n")) },
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
        do {
            let socket = try Socket(family: AF_UNIX, type: SOCK_STREAM)
            try socket.connect(unixPath: path)
            try socket.setTimeouts(milliseconds: 5000)
            guard socket.sendAll(Array((command + "\n").utf8)) else {
                throw ControlError("lbnode at \(path) closed the connection before the command was sent")
            }
            var answer = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while let count = try buffer.withUnsafeMutableBytes({ try socket.receive(into: $0) }), count > 0 {
                answer.append(contentsOf: buffer[0..<count])
            }
            return answer
        } catch let error as SystemCallError {
            throw ControlError(
                "cannot reach lbnode at \(path): \(error) (is `lbnode run` running, and may you use its socket?)")
        }
    }
}

struct ControlError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
