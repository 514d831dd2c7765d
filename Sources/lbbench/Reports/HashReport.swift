import Foundation

/// The figures of `lbbench hash`, printed as tables or encoded as JSON.
struct HashReport: Codable {
    struct KeyLookup: Codable {
        var keys: Int
        var nanosecondsPerLookup: Double
        var millionsPerSecond: Double
    }

    struct Eviction: Codable {
        var slotFillPercent: Int
        var evictedPercentOfInserts: Double
    }

    struct FlowTableFigures: Codable {
        var capacity: Int
        var slots: Int
        var bytesPerSlot: Int
        var memoryMiB: Double
        var nanosecondsPerInsert: Double
        var nanosecondsPerHit: Double
        var nanosecondsPerMiss: Double
        var evictions: [Eviction]
    }

    struct TableFigures: Codable {
        var algorithm: String
        var view: String
        var nodes: Int
        var buildMilliseconds: Double
        /// The same build from the members' rendezvous logs computed once (as `lbnode run` does).
        var buildFromKeptLogsMilliseconds: Double
        var worstShareDeviationPercent: Double
        var leaveMovedPercent: Double
        var leaveMovedBetweenOthersPercent: Double
        var joinMovedPercent: Double
        var joinMovedBetweenOthersPercent: Double
    }

    var buckets: Int
    var keyLookup: KeyLookup
    var flowTable: FlowTableFigures
    var tables: [TableFigures]

    var table: String {
        let f = { (value: Double, decimals: Int) in String(format: "%.\(decimals)f", value) }
        var lookup = TextTable(
            title: "Key lookup (VH1 bucket hash + bucket + owner)", header: ["keys", "ns/lookup", "M/s"])
        lookup.add(["\(keyLookup.keys)", f(keyLookup.nanosecondsPerLookup, 2), f(keyLookup.millionsPerSecond, 1)])

        var flows = TextTable(
            title: "Flow table (capacity \(flowTable.capacity) flows, \(flowTable.slots) slots of "
                + "\(flowTable.bytesPerSlot) B, \(f(flowTable.memoryMiB, 1)) MiB; timed with the table at capacity)",
            header: ["operation", "ns/op"]
        )
        flows.add(["insert", f(flowTable.nanosecondsPerInsert, 1)])
        flows.add(["lookup, hit", f(flowTable.nanosecondsPerHit, 1)])
        flows.add(["lookup, miss", f(flowTable.nanosecondsPerMiss, 1)])

        var evictions = TextTable(
            title: "Flow table evictions while its slots fill", header: ["slots filled", "evicted % of inserts"])
        for eviction in flowTable.evictions {
            evictions.add(["\(eviction.slotFillPercent)%", f(eviction.evictedPercentOfInserts, 3)])
        }

        var builds = TextTable(
            title: "Bucket tables (\(buckets) buckets): build time, worst share vs ideal, buckets moved",
            header: [
                "algorithm", "view", "build ms", "from kept logs", "worst share ±%", "leave moved %", "  of others %",
                "join moved %", "  of others %",
            ]
        )
        for row in tables {
            let view = row.nodes > 4 ? "\(row.nodes) equal" : row.view
            builds.add([
                row.algorithm, view, f(row.buildMilliseconds, 2), f(row.buildFromKeptLogsMilliseconds, 2),
                f(row.worstShareDeviationPercent, 2),
                f(row.leaveMovedPercent, 2), f(row.leaveMovedBetweenOthersPercent, 2), f(row.joinMovedPercent, 2),
                f(row.joinMovedBetweenOthersPercent, 2),
            ])
        }
        return [lookup.rendered, flows.rendered, evictions.rendered, builds.rendered].joined(separator: "\n\n")
    }
}
