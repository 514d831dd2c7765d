import Foundation
import TapEngine

/// The commands of the control socket: `status` (anyone who may connect), `drain SECONDS` and `undrain` (root, or a
/// member of `control_group`). A command only asks (`DaemonRequests`); the heartbeat loop carries it out at its next
/// turn, and `status` shows the result.
struct ControlCommands: Sendable {
    let config: FarmConfig
    let requests: DaemonRequests

    /// The longest drain the control socket accepts (a day), as `lbnode drain --timeout` does.
    static let maxDrainSeconds = 86_400

    struct Reply: Encodable {
        var draining: Int?
        var undrained: Bool?
        var error: String?
    }

    func answer(_ command: String, from peer: StreamServer.Peer) -> Data {
        let words = command.split(separator: " ")
        switch words.first {
        case "status":
            let snapshot = requests.status.current()
            return (try? JSONEncoder().encode(snapshot)) ?? Data("{}".utf8)
        case "drain":
            if let refused = refusal(of: peer, for: "drain") { return reply(Reply(error: refused)) }
            let text = words.count > 1 ? String(words[1]) : "60"
            guard words.count <= 2, let seconds = Int(text), (0...Self.maxDrainSeconds).contains(seconds) else {
                return reply(Reply(error: "drain takes a number of seconds from 0 to \(Self.maxDrainSeconds)"))
            }
            if state == MemberState.drained.description {
                return reply(Reply(error: "node \(config.node.id) is drained already (`lbnode undrain` takes it back)"))
            }
            requests.requestDrain(seconds: seconds)
            return reply(Reply(draining: seconds))
        case "undrain":
            if let refused = refusal(of: peer, for: "undrain") { return reply(Reply(error: refused)) }
            guard let state, [MemberState.draining, .drained].map(\.description).contains(state) else {
                return reply(
                    Reply(error: "node \(config.node.id) is \(state ?? "starting"), not draining: nothing to undo"))
            }
            requests.requestUndrain()
            return reply(Reply(undrained: true))
        default:
            return reply(Reply(error: "unknown command '\(command.prefix(64))': status, drain SECONDS or undrain"))
        }
    }

    /// The node's state in the latest status snapshot.
    private var state: String? { requests.status.current()?.state }

    /// Why `peer` may not `command` (only root and `control_group` may change the node), or nil.
    private func refusal(of peer: StreamServer.Peer, for command: String) -> String? {
        guard peer.uid != 0, config.controlGroup.map({ peer.belongs(toGroup: $0.id) }) != true else { return nil }
        let group = config.controlGroup.map { " or a member of group \($0.name)" } ?? ""
        return
            "\(command) needs root\(group) (the control socket's peer is uid \(peer.uid.map(String.init) ?? "unknown"))"
    }

    private func reply(_ value: Reply) -> Data { (try? JSONEncoder().encode(value)) ?? Data("{}".utf8) }
}
