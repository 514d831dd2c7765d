import Foundation

@testable import lbbench

extension FailoverSubject {
    /// One failover trial as `lbbench failover` runs it, shorter: requests flow for `before` seconds, server `victim`
    /// fails, and they flow 1.5 s more.
    func trial(
        of victim: Int, _ mode: FailureMode, system: FailoverSystem, udp: Int, tcp: Int, intervalMilliseconds: Double,
        before: Double
    ) throws -> FailoverTrial {
        let probe = try openProbe(udp: udp, tcp: tcp, intervalMilliseconds: intervalMilliseconds)
        probe.start()
        Thread.sleep(forTimeInterval: before)
        let failedAt = probe.now
        try fail(victim, mode)
        Thread.sleep(forTimeInterval: 1.5)
        probe.stop()
        return FailoverTrial(
            system: system, mode: mode, records: probe.records, victim: UInt16(victim), failedAt: failedAt)
    }
}
