import ArgumentParser
import Foundation

/// Where to find a running daemon: its configuration (which names the control socket) or the socket itself.
struct ControlOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file of the running node.")
    var config: String?

    @Option(help: "The control socket (default: the one the configuration names).")
    var socket: String?

    func validate() throws {
        guard config != nil || socket != nil else { throw ValidationError("give --config FILE or --socket PATH") }
    }

    func socketPath() throws -> String {
        if let socket { return socket }
        do {
            return try FarmConfig.parse(String(contentsOfFile: config!, encoding: .utf8), file: config!).controlSocket
        } catch let error as ConfigError {
            throw CommandFailure(error.description)
        } catch {
            throw CommandFailure("cannot read \(config!): \(error)")
        }
    }

    func request(_ command: String) throws -> Data {
        do { return try ControlServer.request(command, path: socketPath()) } catch let error as ControlError {
            throw CommandFailure(error.description)
        }
    }
}

extension ControlOptions {
    /// The node's status snapshot, or nil when the node answers but has none yet (it is starting).
    ///
    /// - Throws: `CommandFailure` when the node does not answer, `UnreadableStatus` when it answers with a status this
    ///   lbnode cannot read.
    func status() throws -> NodeStatus? {
        try Self.decodeStatus(request("status"))
    }

    /// A node's answer to `status`: nil while it has no snapshot yet (`null`).
    static func decodeStatus(_ data: Data) throws(UnreadableStatus) -> NodeStatus? {
        if String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "null" {
            return nil
        }
        do {
            return try JSONDecoder().decode(NodeStatus.self, from: data)
        } catch {
            throw UnreadableStatus(reason: "\(error)")
        }
    }

    /// Sends a command that changes the node (`drain`, `undrain`) and fails with the node's reason if it refuses.
    func change(_ command: String) throws {
        let reply = try request(command)
        if let refused = (try? JSONSerialization.jsonObject(with: reply) as? [String: Any])?["error"] as? String {
            throw CommandFailure("\(command.split(separator: " ")[0]) refused: \(refused)")
        }
    }
}

/// The node answered with a status this lbnode cannot read: the two are different versions (the package was upgraded
/// and the node not restarted yet).
struct UnreadableStatus: Error, CustomStringConvertible {
    let reason: String
    var description: String {
        "cannot read the node's status: it runs another version of lbnode than this one (\(LBNode.versionText)); "
            + "`lbnode status --json` shows it as it is, and restarting the node (`systemctl restart vipfarm@FARM`) "
            + "brings it to this version (\(reason))"
    }
}
