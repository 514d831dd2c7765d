import Foundation
import RouteSetup
import Testing

/// Privileged tests need root; under CI (`CI` set) they always run, so a missing privilege fails there.
let privileged = Testing.ConditionTrait.enabled(
    if: geteuid() == 0 || ProcessInfo.processInfo.environment["CI"] != nil,
    "needs root (network namespaces)")

/// `lbnode setup` and `teardown` as an operator runs them: the built binary, in a fresh namespace whose eth0 has
/// 198.18.0.11/15.
@Suite(privileged)
struct SetupCommandTests {
    struct Outcome {
        let status: Int32
        let output: String
        let errors: String
    }

    /// The `lbnode` binary next to the test bundle.
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("lbnode").path

    /// Runs lbnode inside `namespace` (a process started from a thread inherits its namespace), optionally through
    /// `setpriv` as user nobody.
    static func lbnode(_ arguments: [String], in namespace: NetworkNamespace, asNobody: Bool = false) throws -> Outcome
    {
        let result: Result<Outcome, Error> = try namespace.run { () throws(NetlinkError) in
            Result {
                let process = Process()
                let output = Pipe()
                let errors = Pipe()
                if asNobody {
                    process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                    process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary] + arguments
                } else {
                    process.executableURL = URL(fileURLWithPath: binary)
                    process.arguments = arguments
                }
                process.standardOutput = output
                process.standardError = errors
                try process.run()
                let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return Outcome(status: process.terminationStatus, output: out, errors: err)
            }
        }
        return try result.get()
    }

    /// A namespace with eth0 = 198.18.0.11/15 for `body`, removed afterwards.
    static func withServer(_ body: (NetworkNamespace, String) throws -> Void) throws {
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let namespace = try NetworkNamespace.create(named: "vf-test-\(suffix)")
        let stateDirectory = NSTemporaryDirectory() + "vipfarm-cli-\(suffix)"
        defer {
            try? namespace.delete()
            try? FileManager.default.removeItem(atPath: stateDirectory)
        }
        try namespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            try socket.addVethPair("eth0", peer: "peer0")
            try socket.changeLink(named: "eth0", LinkChange(up: true))
            try socket.addAddress(IPPrefix("198.18.0.11/15")!, toLink: try socket.requireLink(named: "eth0").index)
        }
        try body(namespace, stateDirectory)
    }

    static func tapExists(in namespace: NetworkNamespace) throws -> Bool {
        try namespace.run { () throws(NetlinkError) in try NetlinkSocket().link(named: "lb0") != nil }
    }

    @Test func setupTwiceThenTeardown() throws {
        try Self.withServer { namespace, state in
            let arguments = ["--interface", "eth0", "--vip", "198.18.0.100", "--state-dir", state]
            let first = try Self.lbnode(["setup"] + arguments, in: namespace)
            #expect(first.status == 0)
            #expect(first.output.contains("done: create TAP device lb0"))
            #expect(first.output.contains("ready: lb0 holds 198.18.0.100"))
            let second = try Self.lbnode(["setup"] + arguments, in: namespace)
            #expect(second.status == 0)
            #expect(second.output.hasPrefix("nothing to change"))
            let teardown = try Self.lbnode(["teardown"] + arguments, in: namespace)
            #expect(teardown.status == 0)
            #expect(teardown.output.contains("sysctls restored"))
            #expect(try !Self.tapExists(in: namespace))
        }
    }

    @Test(arguments: [
        (["--interface", "eth9", "--vip", "198.18.0.100"], "interface eth9 does not exist"),
        (["--interface", "eth0", "--vip", "198.18.0.1000"], "is not an IP address"),
        (["--interface", "eth0", "--vip", "198.18.0.11"], "is eth0's own address"),
    ])
    func badInputIsOneClearLineAndChangesNothing(arguments: [String], message: String) throws {
        try Self.withServer { namespace, state in
            let outcome = try Self.lbnode(["setup"] + arguments + ["--state-dir", state], in: namespace)
            #expect(outcome.status != 0)
            #expect(outcome.errors.contains(message))
            #expect(outcome.errors.split(separator: "\n").first?.contains(message) == true)
            #expect(try !Self.tapExists(in: namespace))
            #expect(!FileManager.default.fileExists(atPath: state))
        }
    }

    @Test func withoutPrivilegesNothingChanges() throws {
        try Self.withServer { namespace, state in
            let outcome = try Self.lbnode(
                ["setup", "--interface", "eth0", "--vip", "198.18.0.100", "--state-dir", state], in: namespace,
                asNobody: true)
            #expect(outcome.status == 1)
            #expect(
                outcome.errors == "lbnode: setup needs CAP_NET_ADMIN: run it as root (or add --dry-run to see "
                    + "the plan); nothing was changed\n")
            #expect(try !Self.tapExists(in: namespace))
        }
    }
}

extension SetupCommandTests {
    @Test func checkRefusesABadFileWithItsLineAndKey() throws {
        let path = NSTemporaryDirectory() + "vipfarm-check-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try
            "farm:\n  name: web\n  vip: 198.18.0.1000\n  key_file: /nonexistent\nnode: {id: 1, interface: eth0, address: 198.18.0.11}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        let errors = Pipe()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["check", "--config", path]
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(
            String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                == "lbnode: \(path):3: farm.vip: '198.18.0.1000' is not an IP address\n")
    }
}
