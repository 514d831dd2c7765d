import Foundation
import Testing

@testable import RouteSetup

/// A fresh network namespace for one test, holding a veth pair whose `eth0` side plays the server's NIC
/// (198.18.0.11/15), deleted when the test ends, pass or fail.
struct ScratchNamespace {
    let namespace: NetworkNamespace
    let stateDirectory: String
    static let interface = "eth0"
    static let address = IPPrefix("198.18.0.11/15")!

    /// Runs `body` with a new namespace, then deletes it and the state directory.
    static func with(_ body: (ScratchNamespace) throws -> Void) throws {
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let namespace = try NetworkNamespace.create(named: "vf-test-\(suffix)")
        let stateDirectory = NSTemporaryDirectory() + "vipfarm-state-\(suffix)"
        defer {
            try? namespace.delete()
            try? FileManager.default.removeItem(atPath: stateDirectory)
        }
        try namespace.run { () throws(NetlinkError) in
            let socket = try NetlinkSocket()
            try socket.addVethPair(interface, peer: "peer0")
            try socket.changeLink(named: interface, LinkChange(up: true))
            try socket.changeLink(named: "peer0", LinkChange(up: true))
            try socket.addAddress(address, toLink: try socket.requireLink(named: interface).index)
        }
        try body(ScratchNamespace(namespace: namespace, stateDirectory: stateDirectory))
    }

    /// Runs `body` inside the namespace with a socket of its own.
    func run<T>(_ body: (NetlinkSocket) throws(NetlinkError) -> T) throws -> T {
        try namespace.run { () throws(NetlinkError) in try body(try NetlinkSocket()) }
    }

    /// Runs `body` inside the namespace; `SetupError`s pass through.
    @discardableResult
    func runSetup<T>(_ body: () throws(SetupError) -> T) throws -> T {
        let result: Result<T, SetupError> = try namespace.run { () throws(NetlinkError) in
            Result { () throws(SetupError) in try body() }
        }
        return try result.get()
    }
}

/// Privileged tests (namespaces, TAP devices) need root. They always run under CI (`CI` set), where a missing
/// privilege is a failure, never a skip; elsewhere they are skipped with this reason when not root.
let privileged = Testing.ConditionTrait.enabled(
    if: geteuid() == 0 || ProcessInfo.processInfo.environment["CI"] != nil,
    "needs root (network namespaces and TAP devices)")
