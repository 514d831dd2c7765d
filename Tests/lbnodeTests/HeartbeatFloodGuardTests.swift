import Testing

@testable import lbnode

/// The heartbeat loop leaves real-time priority when reading takes over a quarter of its time, and returns after a
/// second of calm.
struct HeartbeatFloodGuardTests {
    @Test func heartbeatsOfAFarmAreNoFlood() {
        var guardian = HeartbeatFloodGuard(now: 0)
        // Ten peers every 10 ms, 20 µs a read, for 10 s.
        for now in stride(from: 0, to: 10_000, by: 1) where now % 10 == 0 {
            #expect(guardian.noteReading(microseconds: 20, datagrams: 10, now: now) == nil)
        }
        #expect(!guardian.flooded)
    }

    @Test func aFloodIsFoundWithin25MillisecondsAndEndsAfterASecondOfCalm() {
        var guardian = HeartbeatFloodGuard(now: 0)
        var flooded: Int?
        // From 1000 ms: 1024 datagrams read in 1 ms, back to back.
        for now in 1000..<1100 where flooded == nil {
            if case .flooded(let rate) = guardian.noteReading(microseconds: 1000, datagrams: 1024, now: now) {
                flooded = now
                #expect(rate > 100_000)
            }
        }
        #expect(flooded.map { $0 <= 1026 } == true, "found at \(String(describing: flooded))")
        // Still reading most of the time (under the normal policy now): still flooded, nothing said again.
        for now in 1100..<3000 {
            #expect(guardian.noteReading(microseconds: 800, datagrams: 500, now: now) == nil)
        }
        // The flood stops at 3000: heartbeats only.
        var calmAt: Int?
        for now in stride(from: 3000, to: 5000, by: 10) where calmAt == nil {
            if guardian.noteReading(microseconds: 20, datagrams: 2, now: now) == .calm { calmAt = now }
        }
        #expect(calmAt.map { (4000...4010).contains($0) } == true, "calm at \(String(describing: calmAt))")
        #expect(!guardian.flooded)
    }

    @Test func aLongSilenceCountsAsCalm() {
        var guardian = HeartbeatFloodGuard(now: 0)
        _ = guardian.noteReading(microseconds: 30_000, datagrams: 30_000, now: 5)
        #expect(guardian.flooded)
        // No datagram for two seconds (every peer gone quiet), then one.
        #expect(guardian.noteReading(microseconds: 10, datagrams: 1, now: 2100) == .calm)
    }
}
