import ArgumentParser
import Foundation
import TapEngine
import Testbed

/// `lbbench chaos`: hostile and abnormal conditions on a testbed farm, with figures.
struct ChaosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Attack and break a testbed farm while requests flow, and check what holds (needs root).",
        discussion: """
            For every scenario a fresh three-server farm (default heartbeats: 4 ms, dead after 4) serves 60 UDP \
            client flows, a request every 10 ms each, while one thing goes wrong: junk UDP at the generator's full \
            speed on a node's heartbeat port; forged heartbeats spoofing a peer's address, a live one or a dead one \
            (dead-peer-flood); frames of other EtherTypes (ethertype-flood); ICMP to the VIP and, from the witness's \
            address, to a node, with a witness configured (icmp-flood); the director, then another \
            node, frozen 1.5 s; heartbeats between node 3 and the others blocked with nftables; a TAP deleted; a NIC \
            deleted and re-created; a NIC down and up; 100 idle TCP connections, a random-source SYN flood, then a \
            drain; node 2's cable cut for a minute (long-cut); node 2 powered off for a minute (powered-off); node 3 \
            configured but never started (never-started); node 2 restarted ten times (restarts), and again under wrk \
            through the VIP to nginx, in flood once the joins' handover window is over (restarts-wrk: p99 under \
            200 ms); \
            node 2 deaf to node \
            1's heartbeats for the long-fault time, then node 1 deaf to node 2's, on three nodes (one-way) and on two \
            (one-way-pair); nodes 1 and 2 deaf to each other while node 3 hears both, then nodes 2 and 3 \
            (deaf-pair); a capture of node 3's heartbeats replayed after it was restarted and killed (replay); node \
            2's lbnode stopped for an interval to 1.5 deadlines (at most 40 ms) every 50-250 ms for the long-fault \
            time (stalls: after 5 s, no view change, nothing lost). \
            Each scenario passes or fails on what a user relies on (no view change under a flood or a replay, no \
            duplicate answer, exactly one side of a partition serving, exactly one node of a pair that does not \
            hear the other standing down, clients \
            served again within the budget, no connection broken by the drain; while a node is away after the first \
            failover: no view change among the survivors, nothing lost, no flow silent over 100 ms). Exits 1 if any \
            failed.
            """
    )

    @Option(help: "Seconds each flood lasts.")
    var floodSeconds = 30.0

    @Option(
        help: ArgumentHelp(
            "Seconds a long fault lasts (long-cut, powered-off, never-started, stalls; one-way(-pair), deaf-pair: "
                + "a round)."))
    var longFaultSeconds = 60.0

    @Option(help: ArgumentHelp(DeliverySetting.help))
    var delivery: DeliverySetting = .fixed(.flood)

    @Option(help: "Milliseconds within which a failed node's clients must be served again.")
    var recoveryBudget = 250.0

    @Option(
        parsing: .upToNextOption,
        help: "Scenarios to run (default: all): \(ChaosScenario.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenarios: [String] = []

    @OptionGroup var engineThreads: EngineThreadsOption

    @OptionGroup var heartbeat: HeartbeatOption

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard (1...600).contains(floodSeconds) else { throw ValidationError("--flood-seconds must be from 1 to 600") }
        guard (5...3600).contains(longFaultSeconds) else {
            throw ValidationError("--long-fault-seconds must be from 5 to 3600")
        }
        for name in scenarios where ChaosScenario(rawValue: name) == nil {
            throw ValidationError("unknown scenario '\(name)'")
        }
    }

    struct Report: Codable {
        var delivery: String
        var floodSeconds: Double
        var recoveryBudgetMilliseconds: Double
        var outcomes: [ChaosOutcome]
    }

    func run() throws {
        try requireRoot()
        warnAboutLeftovers()
        let chosen = scenarios.isEmpty ? ChaosScenario.allCases : scenarios.compactMap(ChaosScenario.init)
        var outcomes: [ChaosOutcome] = []
        for scenario in chosen {
            FileHandle.standardError.write(Data("lbbench chaos: \(scenario.rawValue)...\n".utf8))
            var options = VirtualFarm.Options(delivery: delivery)
            engineThreads.apply(to: &options)
            heartbeat.settings.apply(to: &options)
            scenario.shape(&options)
            let farm = try VirtualFarm(options)
            defer { farm.stop() }
            guard farm.waitForView(farm.startedView, nodes: farm.startedNodes) else {
                throw FarmError("the farm did not form; node 1 logged:\n\(farm.log(1))")
            }
            let chaos = FarmChaos(
                farm: farm, floodSeconds: floodSeconds, recoveryBudgetMilliseconds: recoveryBudget,
                longFaultSeconds: longFaultSeconds)
            let logged = farm.logLengths()
            var outcome = try chaos.run(scenario)
            if !outcome.passed {
                // What the nodes said about their views while it failed: the farm and its logs go with it.
                outcome.events = farm.events(since: logged)
                let lines = outcome.events.map { "  \($0)\n" }.joined()
                let message = "lbbench chaos: \(scenario.rawValue) failed; the nodes logged:\n\(lines)"
                FileHandle.standardError.write(Data(message.utf8))
            }
            outcomes.append(outcome)
            farm.stop()
        }
        let report = Report(
            delivery: delivery.description, floodSeconds: floodSeconds, recoveryBudgetMilliseconds: recoveryBudget,
            outcomes: outcomes)
        var table = TextTable(
            title: "Hostile conditions, \(delivery) delivery (floods \(Int(floodSeconds)) s, recovery budget "
                + "\(Int(recoveryBudget)) ms)",
            header: ["scenario", "result", "requests", "lost", "dups", "longest gap ms", "figures"])
        for outcome in outcomes {
            let figures = outcome.figures.sorted { $0.key < $1.key }.map {
                "\($0.key)=\($0.value.rounded() == $0.value ? String(Int($0.value)) : String(format: "%.1f", $0.value))"
            }
            table.add([
                outcome.scenario.rawValue,
                outcome.passed ? "pass" : "FAIL: " + outcome.failures.joined(separator: "; "),
                "\(outcome.tally.sent)", "\(outcome.tally.lost)", "\(outcome.tally.duplicates)",
                String(format: "%.1f", outcome.tally.longestGapMilliseconds), figures.joined(separator: " "),
            ])
        }
        try output.emit(
            "chaos-\(delivery)", title: "lbbench chaos: hostile and abnormal conditions", table: table.rendered,
            value: report)
        if outcomes.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}
