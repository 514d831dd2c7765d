import Foundation
import RouteSetup
import Testing

@testable import Testbed

/// A harness that dies (a crash, SIGKILL) must not leave its lbnodes running.
@Suite(privileged)
struct ExitWithParentTests {
    @Test func lbnodeLeavesWhenItsParentEnds() throws {
        let testbed = try VirtualNetwork(.init(servers: 1, clients: 0))
        defer { testbed.down() }
        let directory = NSTemporaryDirectory() + "vipfarm-parent-\(VirtualNetwork.randomID())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(repeating: 7, count: 32).write(to: URL(fileURLWithPath: "\(directory)/key"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(directory)/key")
        try """
        farm: { name: solo, vip: 198.18.0.100, key_file: \(directory)/key }
        node: { id: 1, interface: eth0, address: 198.18.0.11 }
        control_socket: \(directory)/n1.sock
        peers: []
        """.write(toFile: "\(directory)/n1.yaml", atomically: true, encoding: .utf8)
        // A shell starts lbnode in the background and ends a second later: lbnode's parent is gone.
        let shell =
            "\(VirtualFarm.lbnodePath) run --config \(directory)/n1.yaml --state-dir \(directory)/state "
            + "--exit-with-parent 2>\(directory)/log & sleep 1"
        let result: Result<Void, Error> = try testbed.servers[0].namespace.run { () throws(NetlinkError) in
            Result {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", shell]
                try process.run()
                process.waitUntilExit()
            }
        }
        try result.get()
        let deadline = Date().addingTimeInterval(5)
        var log = ""
        while Date() < deadline, !log.contains("leaving: announcing") {
            Thread.sleep(forTimeInterval: 0.05)
            log = (try? String(contentsOfFile: "\(directory)/log", encoding: .utf8)) ?? ""
        }
        #expect(log.contains("ended: leaving"), "\(log)")
        #expect(log.contains("leaving: announcing"), "\(log)")
    }
}
