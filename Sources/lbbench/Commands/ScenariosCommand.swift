import ArgumentParser
import Foundation
import Hashing
import TapEngine
import Testbed

/// `lbbench scenarios`: does the farm work in networks nobody told us about?
struct ScenariosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenarios",
        abstract: "Run a short request and failover check on each kind of network, every delivery mode (root).",
        discussion: """
            Each variant is a testbed description: a learning bridge; a bridge with unknown-unicast flooding off \
            (directed and relay must pass; flood cannot work there and is expected to fail); a strict virtual \
            switch (no flooding, and each port drops frames whose source MAC is not its host's NIC: only relay \
            can work); clients behind a router namespace (the router learns the VIP by ordinary ARP); an IPv6 VIP; \
            every host on 802.1Q VLAN 100 (lbnode on eth0.100). Per variant and delivery mode (auto too: every \
            node must pick the cheapest mode that works there), a three-server farm, \
            300 client flows answered exactly once, server 2's cable cut, 300 flows answered exactly once by the \
            survivors. Prints a pass/fail matrix; exits 1 on an unexpected result.
            """
    )

    @OptionGroup var engineThreads: EngineThreadsOption

    @OptionGroup var output: ReportOptions

    /// One kind of network.
    struct Variant {
        var name: String
        var testbed: VirtualNetwork.Description
        var vip = "198.18.0.100"
        /// Delivery modes that cannot work here.
        var expectedToFail: Set<String> = []
        /// The cheapest mode that works here: the one `delivery: auto` must pick.
        var autoPicks = "flood"
    }

    static let variants: [Variant] = [
        Variant(name: "learning bridge (kernel's offloads, GRO on servers)", testbed: .init(servers: 3, clients: 1)),
        Variant(name: "jumbo MTU 9000", testbed: .init(servers: 3, clients: 1, mtu: 9000)),
        Variant(
            name: "wire-like hosts (no offloads; unrealistic reference)",
            testbed: .init(servers: 3, clients: 1, offloads: .wireLike)),
        Variant(
            name: "bridge, unknown-unicast flooding off",
            testbed: .init(servers: 3, clients: 1, unknownUnicastFlooding: false), expectedToFail: ["flood"],
            autoPicks: "directed"),
        Variant(
            name: "strict virtual switch (no flooding, source MAC locked per port)",
            testbed: .init(servers: 3, clients: 1, unknownUnicastFlooding: false, portSecurity: true),
            expectedToFail: ["flood", "directed"], autoPicks: "relay"),
        Variant(name: "clients behind a router", testbed: .init(servers: 3, clients: 1, routedClients: true)),
        Variant(name: "IPv6 VIP", testbed: .init(servers: 3, clients: 1, ipv6: true), vip: "2001:2::100"),
        Variant(name: "802.1Q VLAN 100", testbed: .init(servers: 3, clients: 1, vlan: 100)),
    ]

    static let deliveries: [DeliverySetting] = [.fixed(.directed), .fixed(.flood), .fixed(.relay), .auto]

    struct Result: Codable {
        var variant: String
        var delivery: String
        var passed: Bool
        var expectedToFail: Bool
        /// The machine cannot build this network (e.g. a kernel without 802.1Q): neither pass nor fail.
        var skipped = false
        var detail: String
        var asExpected: Bool { skipped || passed != expectedToFail }
    }

    func run() throws {
        try requireRoot()
        warnAboutLeftovers()
        var results: [Result] = []
        for variant in Self.variants {
            for setting in Self.deliveries {
                let delivery = setting.description
                let (passed, detail) = Self.check(variant, delivery: setting, engineThreads: engineThreads.value)
                let result = Result(
                    variant: variant.name, delivery: delivery, passed: passed,
                    expectedToFail: variant.expectedToFail.contains(delivery),
                    skipped: detail.contains("create VLAN") && detail.contains("not supported"), detail: detail)
                FileHandle.standardError.write(
                    Data(
                        "lbbench scenarios: \(variant.name), \(delivery): \(passed ? "pass" : "fail") (\(detail))\n"
                            .utf8))
                results.append(result)
            }
        }
        do {
            var table = TextTable(
                title: "Scenarios: requests and failover per network",
                header: ["network"] + Self.deliveries.map(\.description))
            for variant in Self.variants {
                let cells = Self.deliveries.map(\.description).map { delivery -> String in
                    guard let result = results.first(where: { $0.variant == variant.name && $0.delivery == delivery })
                    else { return "-" }
                    if result.skipped { return "skipped: this kernel has no 802.1Q" }
                    switch (result.passed, result.expectedToFail) {
                    case (true, false): return delivery == "auto" ? "pass (\(variant.autoPicks))" : "pass"
                    case (false, true): return "fails, as expected"
                    case (true, true): return "PASSES, unexpected"
                    case (false, false): return "FAIL: \(result.detail)"
                    }
                }
                table.add([variant.name] + cells)
            }
            try output.emit("scenarios", title: "lbbench scenarios", table: table.rendered, value: results)
        }
        if results.contains(where: { !$0.asExpected }) { throw ExitCode(1) }
    }

    /// The check of one variant and delivery mode: whether it passed, and what was seen.
    static func check(_ variant: Variant, delivery: DeliverySetting, engineThreads: Int? = nil) -> (Bool, String) {
        do {
            var options = VirtualFarm.Options(testbed: variant.testbed, delivery: delivery, vip: variant.vip)
            options.engineThreads = engineThreads
            options.heartbeatIntervalMilliseconds = 20  // a margin: the scenarios check behaviour, not speed
            options.deadAfter = 5
            let farm = try VirtualFarm(options)
            defer { farm.stop() }
            guard farm.waitForView("{1:100, 2:100, 3:100}", nodes: [1, 2, 3], seconds: 15) else {
                return (false, "no view")
            }
            if delivery == .auto {
                let picked = [1, 2, 3].map { Self.delivery(of: farm, node: $0) ?? "none" }
                guard picked.allSatisfy({ $0 == variant.autoPicks }) else {
                    return (false, "picked \(picked.joined(separator: ", ")), not \(variant.autoPicks)")
                }
            }
            let before = try farm.exchange(count: 300)
            guard let problem = Self.problem(before, count: 300, servers: [1, 2, 3]) else {
                try farm.setLink(2, up: false)
                guard farm.waitForView("{1:100, 3:100}", nodes: [1, 3], seconds: 3) else {
                    return (false, "no failover")
                }
                let after = try farm.exchange(count: 300)
                if let problem = Self.problem(after, count: 300, servers: [1, 3]) {
                    return (false, "after failover: \(problem)")
                }
                return (true, "300/300 before and after failover")
            }
            return (false, problem)
        } catch {
            return (false, "\(error)")
        }
    }

    /// The delivery mode node `node` uses, from `lbnode status --json`.
    static func delivery(of farm: VirtualFarm, node: Int) -> String? {
        let output = try? farm.control(["status", "--json"], node: node)
        let status = output.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        return status?["delivery"] as? String
    }

    /// What is wrong with the answers to `count` requests, or nil: each once, only by `servers`.
    static func problem(_ answered: [Int: [Int]], count: Int, servers: Set<Int>) -> String? {
        let all = answered.values.flatMap { $0 }
        if Set(all).count != count {
            let byServer = answered.keys.sorted().map { "\($0): \(answered[$0]!.count)" }.joined(separator: ", ")
            return "\(Set(all).count)/\(count) answered (\(byServer))"
        }
        if all.count != count { return "\(all.count - count) duplicates" }
        if !Set(answered.keys).isSubset(of: servers) { return "answered by \(answered.keys.sorted())" }
        return nil
    }
}
