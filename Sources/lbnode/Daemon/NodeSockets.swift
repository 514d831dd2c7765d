import Glibc
import Hashing
import Logging
import TapEngine

/// Every socket `lbnode run` serves on: heartbeats, the control socket, `/metrics`, the witness's pings. Opened before
/// the setup changes anything, so that a port in use or an address this host does not have is refused while the host
/// is still as it was.
struct NodeSockets {
    let heartbeat: HeartbeatSocket
    /// The heartbeat socket's kernel filter as attached (the loop pins live peers' incarnations in it).
    let filter: DatagramFilter
    let control: ControlServer
    let metrics: MetricsServer
    let witness: WitnessPinger?

    /// - Throws: `CommandFailure` naming the socket and what to do.
    init(config: FarmConfig, requests: DaemonRequests, log: @escaping @Sendable (Logger.Level, String) -> Void) throws {
        let address = config.node.ip
        filter = DatagramFilter(
            payloadSizes: Heartbeat.size...Heartbeat.maximumSize, magic: Heartbeat.magicWord,
            sources: config.peers.map { $0.ip }, pinnedOffset: Heartbeat.incarnationOffset)
        do {
            heartbeat = try HeartbeatSocket(bindTo: address, port: config.farm.heartbeatPort, filter: filter)
        } catch {
            throw CommandFailure(
                "\(error)"
                    + (error.errno == EADDRINUSE
                        ? ": another lbnode (or a program) uses UDP port \(config.farm.heartbeatPort) on \(address): "
                            + "stop it, or set farm.heartbeat_port" : ""))
        }
        let commands = ControlCommands(config: config, requests: requests)
        do {
            control = try ControlServer(path: config.controlSocket, group: config.controlGroup?.id) { command, peer in
                commands.answer(command, from: peer)
            }
            metrics = try MetricsServer(address: config.metricsAddress) { requests.status.current() }
        } catch {
            throw CommandFailure("\(error)")
        }
        do {
            witness = try config.farm.witness.map { target throws(SystemCallError) in
                try WitnessPinger(target: target)
            }
        } catch {
            throw CommandFailure("the witness \(config.farm.witness!): \(error)")
        }
    }
}
