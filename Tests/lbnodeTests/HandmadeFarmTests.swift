import Foundation
import Testing

@testable import Testbed

/// A farm built by hand with iproute2, none of vipfarm's testbed code, every host with the kernel's defaults for a
/// veth (checksum offload, TSO), as a new user builds one: `scripts/handmade-farm.sh` (see its header). It runs the
/// debug build's lbnode and lbbench with the suites' heartbeat margin (20 ms, dead after 5, as FarmEndToEndTests):
/// with lbnode's defaults (4 ms x 4) a debug build starved of CPU by flood delivery and GRO on two cores misses
/// heartbeats for tens of ms, a peer is declared dead while it serves, and both answer its clients (no quorum yet). So
/// recovery (100 ms of silence, then a debug build's table build) is allowed 250 ms here; the release build is held
/// to 50 ms with the defaults, by `lbbench failover` and by the script run by hand. The test checks what works, not
/// the figures, so it measures at once instead of waiting for the last restart's handover window (30 s) to end.
@Suite(privileged, .serialized)
struct HandmadeFarmTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/handmade-farm.sh").path

    @Test(arguments: [["--delivery", "directed"], ["--delivery", "flood", "--gro"]])
    func aFarmBuiltByHandServesRealApplicationsAndFailsOver(options: [String]) throws {
        let binaries = URL(fileURLWithPath: VirtualFarm.lbnodePath).deletingLastPathComponent().path
        // SIGTERM on a timeout, not SIGKILL: the script's trap removes what it built.
        let (status, text) = try runToEnd(
            in: nil, "/bin/bash",
            [
                Self.script, "--bin", binaries, "--trials", "3", "--seconds", "2", "--heartbeat", "20/5",
                "--recovery-limit", "250", "--measure-at-once",
            ] + options, timeout: 240, stopSignal: SIGTERM)
        let summary = text.split(separator: "\n").filter { !$0.hasPrefix("20") }.joined(separator: "\n")
        #expect(status == 0, "\(summary)")
        #expect(text.contains("handmade farm: pass"), "\(summary)")
        #expect(text.contains("wrk through the VIP:") && text.contains(", 0 errors"), "\(summary)")
        #expect(text.contains("wrk straight to server 1:") && !text.contains("(through the VIP: -x)"), "\(summary)")
        // Flood delivery is also set against straight traffic the switch floods: what flooding itself costs.
        let flooded = text.split(separator: "\n").filter { $0.contains("flooded by the switch") }
        #expect(flooded.count == (options.contains("flood") ? 3 : 0), "wrk, upload and UDP: \(summary)")
    }
}
