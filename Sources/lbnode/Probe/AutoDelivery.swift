import Foundation
import TapEngine

/// `delivery: auto`: the mode `lbnode run` uses, found before it serves. A node that hears heartbeats of running peers
/// joins in the mode they announce (the leader's first); nodes that start together probe together (`FarmProbe`) and
/// all take the costliest of their verdicts; a node alone, which cannot tell what the switch does, takes the mode it
/// picked last time (remembered in `/var/lib/vipfarm`) or waits for a peer, at most `loneWaitSeconds`, then takes
/// relay, which works on any switch (peers that start later join in it). A farm of one needs nothing of the switch:
/// relay.
struct AutoDelivery {
    let config: FarmConfig
    let keys: [Data]
    /// Where the decision is remembered (it outlives a reboot).
    let memoryDirectory: String
    /// How long each probe lasts (the nodes that start within this time of each other probe together).
    var seconds = 2.0
    /// How long a node alone, with no mode remembered, waits for a peer before it takes relay (nil: for ever).
    var loneWaitSeconds: Int? = 60
    let log: (String) -> Void
    let stopRequested: () -> Bool

    struct Decision: Equatable {
        var delivery: Delivery
        var reason: String
    }

    /// Where this node remembers its last decision.
    var savedPath: String { "\(memoryDirectory)/delivery.\(config.farm.name).\(config.node.id)" }

    /// The mode to use, or nil if the node was asked to stop first.
    func decide() throws -> Decision? {
        if config.peers.isEmpty {
            return Decision(delivery: .relay, reason: "a farm of one node: relay, which needs nothing of the switch")
        }
        var lastLog: (line: String, at: ContinuousClock.Instant)?
        /// Logs `line`, but the same line at most every 10 s (a probe lasts 2 s).
        func note(_ line: String) {
            guard lastLog.map({ $0.line != line || ContinuousClock.now - $0.at >= .seconds(10) }) ?? true else {
                return
            }
            lastLog = (line, .now)
            log(line)
        }
        let start = ContinuousClock.now
        while !stopRequested() {
            let report = try FarmProbe(config: config, keys: keys, seconds: seconds, requireEveryPeer: false).run()
            if let decision = Self.adopt(report.running) {
                save(decision.delivery)
                return decision
            }
            if let running = report.running.first {
                note(
                    "delivery auto: node \(running.node) runs lbnode but its heartbeats do not say its delivery mode "
                        + "(an older version?): set delivery to that mode in this node's configuration")
            } else if !report.heard.isEmpty {
                if let delivery = report.delivery {
                    if report.vipInUse, let check = report.checks.first(where: { $0.name == "VIP free" }) {
                        log("delivery auto: WARNING: \(check.detail): clients may reach that host instead of the farm")
                    }
                    save(delivery)
                    return Decision(
                        delivery: delivery,
                        reason: "probed with node\(report.heard.count > 1 ? "s" : "") "
                            + "\(report.heard.map(String.init).joined(separator: ", ")): \(report.explanation)")
                }
                note(
                    "delivery auto: \(report.explanation) (\(report.checks.first { !$0.passed }?.detail ?? "")); "
                        + "probing again")
                continue
            }
            if let saved = savedDelivery() {
                return Decision(
                    delivery: saved,
                    reason: "no peer answered the probe; \(saved), which this node's last probe picked (\(savedPath))")
            }
            if let wait = loneWaitSeconds, ContinuousClock.now - start >= .seconds(wait) {
                save(.relay)
                return Decision(
                    delivery: .relay,
                    reason: "no peer answered the probe for \(wait) s and no mode was remembered: relay, which works "
                        + "on any switch (peers that start later join in it)")
            }
            note(
                "delivery auto: no peer answered the probe yet; waiting for one (a node alone cannot tell what the "
                    + "switch does)\(loneWaitSeconds.map { ", at most \($0) s, then relay" } ?? ""). Start lbnode on "
                    + "another node, or set delivery in the configuration")
        }
        return nil
    }

    /// The mode the running nodes announce: the leader's, or else the lowest ID's.
    static func adopt(_ running: [FarmProbe.Report.RunningNode]) -> Decision? {
        let sayers = running.filter { $0.delivery != nil }
        guard let chosen = sayers.first(where: \.leader) ?? sayers.min(by: { $0.node < $1.node }),
            let delivery = chosen.delivery
        else { return nil }
        return Decision(
            delivery: delivery,
            reason: "node \(chosen.node)\(chosen.leader ? ", the leader," : "") runs the farm in \(delivery) delivery")
    }

    private func save(_ delivery: Delivery) {
        try? FileManager.default.createDirectory(atPath: memoryDirectory, withIntermediateDirectories: true)
        try? Data("\(delivery.rawValue)\n".utf8).write(to: URL(fileURLWithPath: savedPath), options: .atomic)
    }

    private func savedDelivery() -> Delivery? {
        (try? String(contentsOfFile: savedPath, encoding: .utf8)).flatMap {
            Delivery(rawValue: $0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
