import Foundation
import Testing

@testable import Testbed

/// A farm built by hand with iproute2, none of vipfarm's testbed code, every host with the kernel's defaults for a
/// veth (checksum offload, TSO), as a new user builds one: `scripts/handmade-farm.sh` (see its header). It runs the
/// debug build's lbnode and lbbench: failover recovery is allowed 100 ms instead of the 50 ms the release build is
/// held to by the benchmarks, since debug builds on a shared 2-core machine are slower to notice a dead peer.
@Suite(privileged, .serialized)
struct HandmadeFarmTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/handmade-farm.sh").path

    @Test(arguments: [["--delivery", "directed"], ["--delivery", "flood", "--gro"]])
    func aFarmBuiltByHandServesRealApplicationsAndFailsOver(options: [String]) throws {
        let binaries = URL(fileURLWithPath: VirtualFarm.lbnodePath).deletingLastPathComponent().path
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments =
            [Self.script, "--bin", binaries, "--trials", "3", "--seconds", "2", "--recovery-limit", "100"] + options
        process.standardOutput = output
        process.standardError = output
        try process.run()
        TestbedRegistry.register(child: process.processIdentifier)
        defer { TestbedRegistry.unregister(child: process.processIdentifier) }
        let timer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGTERM) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 240, execute: timer)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        timer.cancel()
        let summary = text.split(separator: "\n").filter { !$0.hasPrefix("20") }.joined(separator: "\n")
        #expect(process.terminationStatus == 0, "\(summary)")
        #expect(text.contains("handmade farm: pass"), "\(summary)")
        #expect(text.contains("wrk through the VIP:") && text.contains(", 0 errors"), "\(summary)")
    }
}
