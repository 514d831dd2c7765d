import Foundation
import RouteSetup
import Testing

@testable import Testbed

/// docs/operations.md's *Your first farm, step by step*, run as written: every `sh` block of the section, command by
/// command, on the servers and the client it names. Each server is a network namespace with a mount namespace of its
/// own (a private /etc and /var/lib over the host's, a private /run), so three servers can hold /etc/vipfarm/web.yaml and
/// /run/vipfarm/web.sock side by side. What the test does itself is only what a person does between the commands:
/// copy the key, start the probes five seconds apart, and stand in for systemd (the unit's own commands, from
/// packaging/vipfarm@.service.in, run by hand; a killed node restarted a second later, as `Restart=on-failure` does).
/// One change to the guide: the farm line gets the suites' heartbeat margin (20 ms × 5), for debug builds.
@Suite(privileged, .serialized)
struct FirstFarmWalkthroughTests {
    /// Where a step runs.
    enum Target: Equatable {
        case server(Int), everyServer, client
    }

    struct Step {
        var target: Target
        var command: String
        /// Ends with ` &`: a daemon.
        var background: Bool
        /// `# meanwhile, on ...`: runs while the step before it does.
        var meanwhile: Bool
    }

    /// The steps of the walkthrough, in order.
    static func steps() throws -> [Step] {
        let guide = try String(contentsOfFile: repository + "/docs/operations.md", encoding: .utf8)
        let section = guide.components(separatedBy: "## Your first farm, step by step")[1]
            .components(separatedBy: "\n## ")[0]
        var steps: [Step] = []
        for block in section.components(separatedBy: "```sh\n").dropFirst() {
            let lines = block.components(separatedBy: "```")[0].split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            var target = Target.everyServer
            var meanwhile = false
            var index = 0
            while index < lines.count {
                var line = lines[index]
                index += 1
                if line.hasPrefix("#") {
                    meanwhile = line.hasPrefix("# meanwhile")
                    if line.contains("on every server") {
                        target = .everyServer
                    } else if line.contains("on a client") {
                        target = .client
                    } else if let number = line.firstMatch(of: /on server (\d)/).flatMap({ Int($0.1) }) {
                        target = .server(number)
                    }
                    continue
                }
                guard !line.isEmpty, !line.hasPrefix("ME=") else { continue }  // ME: each server's number, set below
                if line.contains("<<YAML") {
                    // A here-document: up to its end marker, kept as one command.
                    while index < lines.count, lines[index] != "YAML" {
                        line += "\n" + lines[index]
                        index += 1
                    }
                    line += "\nYAML"
                    index += 1
                }
                let background = line.hasSuffix(" &")
                steps.append(
                    Step(
                        target: target, command: background ? String(line.dropLast(2)) : line,
                        background: background, meanwhile: meanwhile))
            }
        }
        return steps
    }

    /// The repository (three levels above this file).
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test func theGuidesStepsAreFound() throws {
        let commands = try Self.steps().map(\.command)
        #expect(commands.contains("lbnode keygen /etc/vipfarm/web.key"))
        #expect(commands.contains("lbnode probe --config /etc/vipfarm/web.yaml"))
        #expect(commands.contains("systemctl enable --now vipfarm@web"))
        #expect(commands.contains("lbnode drain --config /etc/vipfarm/web.yaml --timeout 300 --wait"))
        #expect(commands.contains("lbnode undrain --config /etc/vipfarm/web.yaml"))
        #expect(commands.contains { $0.hasPrefix("cat > /etc/vipfarm/web.yaml <<YAML") && $0.hasSuffix("YAML") })
    }

    /// The unit the guide shows is the one the package installs.
    @Test func theGuideShowsTheUnitThatShips() throws {
        let guide = try String(contentsOfFile: Self.repository + "/docs/operations.md", encoding: .utf8)
        let shown = guide.components(separatedBy: "```ini\n")[1].components(separatedBy: "```")[0]
        let shipped = try String(contentsOfFile: Self.repository + "/packaging/vipfarm@.service.in", encoding: .utf8)
            .replacingOccurrences(of: "@BINDIR@", with: "/usr/bin")
        #expect(shown == shipped)
    }

    @Test func aFirstFarmBuiltAsTheGuideSays() throws {
        let walk = try Walkthrough()
        defer { walk.stop() }
        let steps = try Self.steps()
        var index = 0
        while index < steps.count {
            let step = steps[index]
            index += 1
            if index < steps.count, steps[index].meanwhile {
                // This step runs while the next one happens a few seconds into it (a failure under traffic).
                let running = try walk.start(step.command, on: step.target)
                Thread.sleep(forTimeInterval: 5)
                try walk.perform(steps[index])
                index += 1
                for process in running { process.waitUntilExit() }
                let output = walk.output(of: running)
                #expect(running.allSatisfy { $0.terminationStatus == 0 }, "\(step.command): \(output)")
                try walk.verify(step.command, output: output)
                continue
            }
            try walk.perform(step)
        }
        #expect(walk.performed.contains("lbnode undrain --config /etc/vipfarm/web.yaml"), "\(walk.performed)")
    }
}

/// Three servers and a client on a testbed, each server with its own /etc and /run, and the commands of the guide.
final class Walkthrough {
    let testbed: VirtualNetwork
    let directory = NSTemporaryDirectory() + "vipfarm-walk-\(VirtualNetwork.randomID())"
    /// Per server: the process that holds its mount namespace.
    private var hosts: [Int: Process] = [:]
    /// Per server: its `lbnode run`.
    private var nodes: [Int: Process] = [:]
    private var daemons: [Process] = []
    private(set) var performed: [String] = []
    let binaries = URL(fileURLWithPath: SetupCommandTests.binary).deletingLastPathComponent().path

    init() throws {
        testbed = try VirtualNetwork(.init(servers: 3, clients: 1))
        do {
            for server in testbed.servers {
                let root = "\(directory)/s\(server.number)"
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
                // A private /etc and /var/lib (the host's, with writes kept in a tmpfs) and /run, for as long as the
                // holder lives.
                let setup = """
                    mount -t tmpfs tmpfs \(root) && mkdir \(root)/upper \(root)/work \(root)/lib \(root)/libwork && \
                    mount -t overlay overlay -o lowerdir=/etc,upperdir=\(root)/upper,workdir=\(root)/work /etc && \
                    mount -t overlay overlay -o lowerdir=/var/lib,upperdir=\(root)/lib,workdir=\(root)/libwork \
                    /var/lib && \
                    mount -t tmpfs tmpfs /run && rm -rf /etc/vipfarm && mkdir -p /etc/vipfarm && exec sleep infinity
                    """
                let holder = Process()
                holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
                holder.arguments = ["--mount", "--propagation", "private", "/bin/sh", "-c", setup]
                let started: Result<Void, Error> = try server.namespace.run { () throws(NetlinkError) in
                    Result { try holder.run() }
                }
                try started.get()
                TestbedRegistry.register(child: holder.processIdentifier)
                hosts[server.number] = holder
            }
            Thread.sleep(forTimeInterval: 0.3)  // the mounts
        } catch {
            stop()
            throw error
        }
    }

    /// Ends every process it started (by PID) and removes the testbed.
    func stop() {
        for process in nodes.values + daemons + hosts.values where process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        for process in hosts.values { TestbedRegistry.unregister(child: process.processIdentifier) }
        hosts = [:]
        testbed.down()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A process running `command` with `sh` on server `number` (its namespaces; `ME` its number) or on the client;
    /// its output goes to a pipe, or to the file `log` (a daemon, whose output nobody reads as it runs).
    func process(_ command: String, on target: Int?, log: String? = nil) -> Process {
        let process = Process()
        if let log {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = process.standardOutput
        } else {
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
        }
        let shell = ["/usr/bin/env", "ME=\(target ?? 0)", "PATH=\(binaries):/usr/sbin:/usr/bin:/sbin:/bin", "/bin/sh", "-c", command]
        if let target, let holder = hosts[target] {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            process.arguments = ["-t", "\(holder.processIdentifier)", "-m", "-n", "--"] + shell
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip"]
            process.arguments! += ["netns", "exec", testbed.clients[0].namespace.name] + shell
        }
        return process
    }

    /// Starts `command` on every machine `target` names; the processes.
    func start(_ command: String, on target: FirstFarmWalkthroughTests.Target) throws -> [Process] {
        let numbers: [Int?] =
            switch target {
            case .server(let number): [number]
            case .everyServer: testbed.servers.map(\.number)
            case .client: [nil]
            }
        return try numbers.map { number in
            let process = self.process(command, on: number)
            try process.run()
            return process
        }
    }

    func output(of processes: [Process]) -> String {
        processes.map { process in
            let pipe = process.standardOutput as! Pipe
            return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }.joined(separator: "\n")
    }

    /// Runs `command` on `number` to its end; its output, after checking it exited 0.
    @discardableResult
    func run(_ command: String, on number: Int?) throws -> String {
        let process = self.process(command, on: number)
        try process.run()
        let text = output(of: [process])
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(number.map { "server \($0)" } ?? "client"): \(command): \(text)")
        return text
    }

    /// Does one step of the guide, standing in for a person and for systemd where the guide says so.
    func perform(_ step: FirstFarmWalkthroughTests.Step) throws {
        performed.append(step.command)
        let numbers: [Int?] =
            switch step.target {
            case .server(let number): [number]
            case .everyServer: testbed.servers.map(\.number)
            case .client: [nil]
            }
        switch step.command {
        case "systemctl enable --now vipfarm@web", "systemctl start vipfarm@web":
            for number in numbers { try startUnit(on: number!) }
        case "systemctl kill -s KILL vipfarm@web":
            for number in numbers {
                guard let node = nodes[number!] else { continue }
                kill(node.processIdentifier, SIGKILL)
                node.waitUntilExit()
                Thread.sleep(forTimeInterval: 1)  // RestartSec=1s
                try startUnit(on: number!)
            }
        case let command where command.hasPrefix("lbnode probe"):
            // People start it by hand on each server, seconds apart.
            var probes: [Process] = []
            for number in numbers {
                if !probes.isEmpty { Thread.sleep(forTimeInterval: 5) }
                probes += try start(command, on: .server(number!))
            }
            for probe in probes { probe.waitUntilExit() }
            let outputs = probes.map { output(of: [$0]) }
            #expect(probes.allSatisfy { $0.terminationStatus == 0 }, "\(outputs)")
            #expect(outputs.allSatisfy { $0.contains("delivery that works for the farm: flood") }, "\(outputs)")
        case let command where step.background:
            for number in numbers {
                let daemon = process("exec " + command, on: number, log: "\(directory)/daemon\(daemons.count)")
                try daemon.run()
                daemons.append(daemon)
            }
        case let command where command.hasPrefix("cat > /etc/vipfarm/web.yaml"):
            // The one change to the guide: the suites' heartbeat margin (FarmEndToEndTests). Three debug builds on two
            // shared cores take longer than the defaults' 16-ms deadline to handle a view change, so a farm at the
            // defaults flaps here; the release build holds them (`lbbench failover`, `steady`, `chaos`).
            let margin = command.replacingOccurrences(
                of: "key_file: /etc/vipfarm/web.key }",
                with: "key_file: /etc/vipfarm/web.key, heartbeat_interval_ms: 20, dead_after: 5 }")
            #expect(margin != command, "the guide's farm line changed: \(command)")
            for number in numbers { try verify(command, output: try run(margin, on: number), on: number) }
        default:
            for number in numbers {
                let output = try repeatUntilSettled(step.command, on: number)
                try verify(step.command, output: output, on: number)
            }
            if step.command.hasPrefix("lbnode keygen") { try copyKey(from: numbers[0]!) }
        }
    }

    /// `lbnode status` right after a start shows nodes still joining: asked again until the farm has formed (15 s).
    private func repeatUntilSettled(_ command: String, on number: Int?) throws -> String {
        guard command.hasPrefix("lbnode status") else { return try run(command, on: number) }
        let deadline = Date().addingTimeInterval(15)
        while true {
            let process = self.process(command, on: number)
            try process.run()
            let text = output(of: [process])
            process.waitUntilExit()
            // Settled: every node serves and the peers report the same view (a heartbeat after the last one joined).
            if (text.contains("nodes: 3 of 3 serving") && text.contains("views agree")) || Date() >= deadline {
                return text
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// What the guide says each command shows.
    func verify(_ command: String, output: String, on number: Int? = nil) throws {
        if command.hasPrefix("lbnode status") {
            #expect(output.contains("nodes: 3 of 3 serving") && output.contains("views agree"), "\(output)")
        } else if command.hasPrefix("lbbench failover") {
            #expect(output.contains("server 2 stopped answering"), "\(output)")
        } else if command.hasPrefix("lbnode drain") {
            // The failover's client has ended: nothing is left to wait for, not even the connections its crash left
            // in server 2's kernel (their buckets moved, no segment reaches them), so it takes seconds, not 300.
            let seconds = FarmEndToEndTests.drainSeconds(output)
            #expect(output.contains(": node 2 serves nothing") && seconds.map { $0 < 30 } == true, "\(output)")
            let seen = try run("lbnode status --config /etc/vipfarm/web.yaml", on: 1)
            #expect(seen.contains("node 2 198.18.0.12: drained") && seen.contains("nodes: 2 of 3 serving"), "\(seen)")
        } else if command.hasPrefix("lbnode undrain") {
            let seen = try repeatUntilSettled("lbnode status --config /etc/vipfarm/web.yaml", on: 1)
            #expect(seen.contains("nodes: 3 of 3 serving"), "\(seen)")
        } else if command.hasPrefix("lbnode check") {
            #expect(output.contains(": ok"), "\(output)")
        }
    }

    /// The unit's ExecStartPre, then its ExecStart in the background, as systemd runs them.
    private func startUnit(on number: Int) throws {
        let unit = try String(
            contentsOfFile: FirstFarmWalkthroughTests.repository + "/packaging/vipfarm@.service.in", encoding: .utf8
        ).replacingOccurrences(of: "@BINDIR@", with: binaries).replacingOccurrences(of: "%i", with: "web")
        func value(_ key: String) -> String {
            unit.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }!
        }
        try run(value("ExecStartPre"), on: number)
        let node = process("exec " + value("ExecStart"), on: number, log: "\(directory)/node\(number).log")
        try node.run()
        nodes[number] = node
    }

    /// The person copying the key file to the other servers (`scp -p`): the same key (keygen writes one hex line),
    /// mode 0600.
    private func copyKey(from number: Int) throws {
        let key = try run("cat /etc/vipfarm/web.key", on: number).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.count == 64 && key.allSatisfy(\.isHexDigit), "\(key)")
        for server in testbed.servers where server.number != number {
            try run(
                "umask 077 && printf '%s\\n' \(key) > /etc/vipfarm/web.key", on: server.number)
        }
    }
}
