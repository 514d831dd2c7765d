import ArgumentParser
import Foundation
import Hashing

/// `lbbench hash`: the speed and quality of the Hashing module.
struct HashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Measures key hashing, bucket tables and the flow table.",
        discussion: """
            Reports nanoseconds per hash+bucket+owner lookup, flow-table insert/hit/miss times with --flows flows, \
            evictions as the table fills, and for both table algorithms the build time, the worst share against \
            the ideal, and the buckets moved when a node leaves or joins.
            """
    )

    @Option(help: "Flow-table capacity and number of flows inserted.")
    var flows: Int = 1 << 20

    @Option(help: "Buckets per table (a power of two from 16 to 1048576).")
    var buckets: Int = BucketTable.defaultCount

    @Option(help: "Times each measurement is repeated; the median is reported.")
    var repetitions: Int = 5

    @OptionGroup var output: ReportOptions

    func validate() throws {
        do {
            try BucketTable.validate(count: buckets)
        } catch {
            throw ValidationError("--buckets: \(error)")
        }
        guard (1_000...(1 << 26)).contains(flows) else {
            throw ValidationError("--flows must be from 1000 to 67108864 (\(flows) given)")
        }
        guard (1...100).contains(repetitions) else {
            throw ValidationError("--repetitions must be from 1 to 100 (\(repetitions) given)")
        }
    }

    func run() throws {
        let benchmark = HashBenchmark(flows: flows, buckets: buckets, repetitions: repetitions)
        let report = benchmark.run()
        try output.emit("hash", title: "lbbench hash: the Hashing module", table: report.table, value: report)
    }
}
