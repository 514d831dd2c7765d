import ArgumentParser
import Foundation

/// `lbnode drain`: hand this node's buckets over, keep its connections until they end, then serve nothing.
struct DrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Hand this node's buckets to the others, keep its established connections, then serve nothing.",
        discussion: """
            New connections go to the other nodes at once; the connections this node has keep being served until \
            none is left, or --timeout seconds have passed. The node is then drained: it serves nothing, still runs \
            and stays listed in every node's status, until `lbnode undrain` takes it back (or lbnode stops). Needs \
            root or a member of control_group.

            With --wait the command returns only once the node is drained: exit 0 when it is (or when lbnode \
            stopped meanwhile), 3 when an undrain cancelled the drain, 4 when it is not drained within --timeout \
            plus 30 s, 1 when the drain was refused or the node cannot be reached.
            """
    )

    @OptionGroup var control: ControlOptions

    @Option(help: "Seconds to keep serving established connections at most.")
    var timeout = 60

    @Flag(help: "Wait until the node is drained, printing what is left every 5 s.")
    var wait = false

    func validate() throws {
        guard (0...ControlCommands.maxDrainSeconds).contains(timeout) else {
            throw ValidationError("--timeout must be from 0 to \(ControlCommands.maxDrainSeconds)")
        }
    }

    func run() throws {
        try control.change("drain \(timeout)")
        guard wait else {
            print("draining: drained as soon as no connection is left, in \(timeout) s at the latest")
            return
        }
        print("draining: waiting until no connection is left (at most \(timeout) s)")
        let start = Date()
        let deadline = start.addingTimeInterval(Double(timeout) + 30)
        var seenDraining = false
        var nextReport = Date().addingTimeInterval(5)
        while Date() < deadline {
            let status: NodeStatus?
            do {
                status = try control.status()
            } catch let unreadable as UnreadableStatus {
                throw unreadable
            } catch {
                print("lbnode stopped: the node left the farm")
                return
            }
            switch status?.state {
            case "drained":
                let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
                print(
                    "drained after \(seconds) s: node \(status!.node) serves nothing (`lbnode undrain` takes it back)")
                return
            case "draining":
                seenDraining = true
                if Date() >= nextReport, let open = status?.drainConnections {
                    print("draining: \(open) connections still open")
                    nextReport = Date().addingTimeInterval(5)
                }
            default:
                if seenDraining {
                    printError("lbnode: the drain was cancelled: node is \(status?.state ?? "starting") again")
                    throw ExitCode(3)
                }
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        printError("lbnode: the node is not drained \(timeout + 30) s after the drain began")
        throw ExitCode(4)
    }
}

/// `lbnode undrain`: a draining or drained node takes buckets again.
struct UndrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undrain",
        abstract: "Take a draining or drained node back into the farm.",
        discussion: """
            The node joins again as a starting node does: active after dead_after heartbeat intervals, taking its \
            buckets back for new connections first (established ones stay where they are). Needs root or a member \
            of control_group; refused when the node is not draining or drained.
            """
    )

    @OptionGroup var control: ControlOptions

    func run() throws {
        try control.change("undrain")
        print("undrained: the node joins again and takes its buckets back")
    }
}
