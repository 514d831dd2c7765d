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

/// `lbnode status`: the running node's view of the farm.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the farm as the running node sees it: members, states, buckets, engine counters."
    )

    @OptionGroup var control: ControlOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let data = try control.request("status")
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        guard let status = try? JSONDecoder().decode(NodeStatus.self, from: data) else {
            throw CommandFailure("the node has no status yet (still starting?)")
        }
        print(
            "farm \(status.farm), node \(status.node) \(status.state), \(status.delivery) delivery"
                + "\(status.deliveryAuto ? " (auto)" : ""), leader "
                + "\(status.leader.map(String.init) ?? "none"), views \(status.agreed ? "agree" : "differ"), "
                + "engine state \(status.generation), \(status.flows) TCP connections tracked")
        for member in status.members {
            print(
                "  node \(member.id): \(member.state)\(member.healthy ? "" : ", unhealthy"), weight \(member.weight), "
                    + "\(member.buckets) buckets\(member.inView ? "" : ", not in the view")")
        }
        print(
            "  engine: "
                + status.engine.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: " "))
        print(
            "  received with offload metadata: "
                + status.offloads.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        if !status.heartbeatsRejected.isEmpty {
            print(
                "  heartbeats rejected: "
                    + status.heartbeatsRejected.sorted { $0.key < $1.key }
                    .map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        print(
            "  quorum: \(status.quorum ? "yes" : "NO") (\(status.liveNodes) of \(status.expectedNodes) nodes alive)"
                + (status.fenced.map { ", FENCED: \($0)" } ?? ""))
        if let reason = status.deliveryReason { print("  delivery auto: \(reason)") }
        if let problem = status.deliveryProblem { print("  DELIVERY CHECK FAILING: \(problem)") }
        if let cheaper = status.deliveryCheaper { print("  delivery check: \(cheaper) delivery would work too") }
        if !status.deliveryDisagreements.isEmpty {
            print("  PEERS USING ANOTHER DELIVERY: \(status.deliveryDisagreements.joined(separator: ", "))")
        }
        if let witness = status.witness {
            print("  witness: \(witness) \(status.witnessReachable == true ? "answers" : "DOES NOT ANSWER")")
        }
        if let fault = status.dataPathFault { print("  DATA PATH DOWN: \(fault)") }
        if !status.duplicateIDs.isEmpty {
            print("  this node's ID is also used by: \(status.duplicateIDs.joined(separator: ", "))")
        }
        if status.leaderConflicts > 0 { print("  leader conflicts: \(status.leaderConflicts)") }
        print(
            "  flows: \(status.flows) (\(status.flowsAdmitted) confirmed, \(status.flowsEvicted) evicted); heartbeats "
                + "dropped by the kernel filter: \(status.heartbeatsDroppedByKernel)")
        if let change = status.lastChange { print("  last change: \(change)") }
        if let failover = status.lastFailover { print("  last failover: \(failover)") }
    }
}

/// `lbnode drain`: hand this node's buckets over and leave.
struct DrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Hand this node's buckets to the others, keep its established connections, then stop.",
        discussion: """
            New connections go to the other nodes at once; the connections this node has keep being served until \
            they end or --timeout seconds have passed, then the node leaves the farm.
            """
    )

    @OptionGroup var control: ControlOptions

    @Option(help: "Seconds to keep serving established connections.")
    var timeout = 60

    func validate() throws {
        guard (0...86_400).contains(timeout) else { throw ValidationError("--timeout must be from 0 to 86400") }
    }

    func run() throws {
        let reply = try control.request("drain \(timeout)")
        if let refused = (try? JSONSerialization.jsonObject(with: reply) as? [String: Any])?["error"] as? String {
            throw CommandFailure("drain refused: \(refused)")
        }
        print("draining: the node stops in \(timeout) s at the latest")
    }
}
