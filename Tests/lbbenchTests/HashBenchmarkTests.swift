import Hashing
import Testing

@testable import lbbench

/// The benchmark's figures are real measurements; these check that what it reports agrees with the promises the
/// Hashing tests prove, on a small run (timings themselves are not asserted: benchmarks measure speed, tests do not).
struct HashBenchmarkTests {
    @Test func smallRunReportsConsistentFigures() throws {
        let report = HashBenchmark(flows: 20_000, buckets: 4096, repetitions: 1).run()
        #expect(report.keyLookup.keys == 20_000)
        #expect(report.keyLookup.nanosecondsPerLookup > 0)
        #expect(report.flowTable.slots == FlowTable.slots(forCapacity: 20_000))
        #expect(report.flowTable.evictions.first { $0.slotFillPercent == 90 }?.evictedPercentOfInserts == 0)
        #expect(report.tables.count == 2 * (HashBenchmark.viewSizes.count + 1))
        for row in report.tables where row.algorithm == "rendezvous" {
            #expect(row.leaveMovedBetweenOthersPercent == 0)
            #expect(row.joinMovedBetweenOthersPercent == 0)
        }
        for row in report.tables where row.algorithm == "balanced" {
            #expect(row.worstShareDeviationPercent < 1)
        }
    }

    @Test func textTableAlignsColumns() {
        var table = TextTable(title: "T", header: ["name", "value"])
        table.add(["a", "1.5"])
        table.add(["long name", "10"])
        #expect(
            table.rendered == """
                T
                name       value
                ----------------
                a            1.5
                long name     10
                """)
    }
}
