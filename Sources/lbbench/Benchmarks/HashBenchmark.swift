import Foundation
import Hashing

/// The measurements behind `lbbench hash`. Inputs come from a seeded generator, so runs differ only in timing.
struct HashBenchmark {
    let flows: Int
    let buckets: Int
    let repetitions: Int
    let seed = FarmSeed(farmName: "lbbench")

    /// Node counts whose tables are measured; all have equal weights except the last row, which is weighted.
    static let viewSizes = [2, 3, 8, 16, 64]

    func run() -> HashReport {
        let keys = Self.clientKeys(count: flows, generator: 1)
        return HashReport(
            buckets: buckets,
            keyLookup: measureKeyLookup(keys: keys),
            flowTable: measureFlowTable(keys: keys),
            tables: TableAlgorithm.allCases.flatMap { algorithm in
                Self.viewSizes.map { measureTable(algorithm: algorithm, view: Self.equalView($0)) }
                    + [measureTable(algorithm: algorithm, view: Self.weightedView)]
            }
        )
    }

    // MARK: - Inputs

    /// Client flows from 198.18.0.0/15 with random ports, to port 80 or 443.
    static func clientKeys(count: Int, generator seed: UInt64) -> [FlowKey] {
        var random = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            let bits = random.next()
            return FlowKey(
                client: IPAddress(ipv4: 0xC612_0000 | UInt32(truncatingIfNeeded: bits & 0x1_FFFF)),
                clientPort: UInt16(truncatingIfNeeded: bits >> 32) | 1024,
                serverPort: bits >> 63 == 0 ? 80 : 443,
                proto: .tcp
            )
        }
    }

    static func equalView(_ count: Int) -> MembershipView {
        try! MembershipView(equalWeights: (1...count).map { NodeID($0)! })
    }

    static let weightedView = try! MembershipView(
        [100, 200, 300, 400].enumerated().map {
            Member(id: NodeID($0.offset + 1)!, weight: $0.element)
        })

    // MARK: - Measurements

    /// The median over the repetitions of `body`'s time, in nanoseconds per operation.
    func nanosecondsPerOperation(operations: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let samples = (0..<repetitions).map { _ in
            let elapsed = clock.measure(body)
            let (seconds, attoseconds) = elapsed.components
            return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(operations)
        }
        return samples.sorted()[samples.count / 2]
    }

    func measureKeyLookup(keys: [FlowKey]) -> HashReport.KeyLookup {
        let table = try! TableBuilder(seed: seed, bucketCount: buckets).build(Self.equalView(8), generation: 1)
        var checksum: UInt64 = 0
        let ns = nanosecondsPerOperation(operations: keys.count) {
            for key in keys {
                let hash = Affinity.none.bucketHash(of: key, isFragment: false, seed: seed)
                checksum &+= UInt64(table.owner(ofHash: hash)?.rawValue ?? 0)
            }
        }
        blackHole(checksum)
        return .init(keys: keys.count, nanosecondsPerLookup: ns, millionsPerSecond: 1e3 / ns)
    }

    /// Slot fill levels at which evictions are read, to show where they start.
    static let fillPercents = [50, 75, 90, 95, 100]

    func measureFlowTable(keys: [FlowKey]) -> HashReport.FlowTableFigures {
        let absent = Self.clientKeys(count: keys.count, generator: 2).map {
            FlowKey(client: $0.client, clientPort: $0.clientPort, serverPort: 8080, proto: .udp)
        }
        var hits = 0
        var inserts: [Double] = []
        var hitTimes: [Double] = []
        var missTimes: [Double] = []
        let clock = ContinuousClock()
        let perKey = { (duration: Duration) -> Double in
            let (seconds, attoseconds) = duration.components
            return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(keys.count)
        }
        // A fresh table per repetition, so that inserts always start from empty.
        for _ in 0..<repetitions {
            var table = FlowTable(capacity: keys.count, idleTimeout: 60_000, closingTimeout: 5_000, seed: 42)
            inserts.append(perKey(clock.measure { for key in keys { table.insert(key, now: 1) } }))
            hitTimes.append(perKey(clock.measure { for key in keys where table.lookup(key, now: 2) { hits += 1 } }))
            missTimes.append(perKey(clock.measure { for key in absent where table.lookup(key, now: 2) { hits += 1 } }))
        }
        blackHole(UInt64(hits))
        let median = { (samples: [Double]) in samples.sorted()[samples.count / 2] }
        let slots = FlowTable.slots(forCapacity: keys.count)
        return .init(
            capacity: keys.count,
            slots: slots,
            bytesPerSlot: FlowTable.bytesPerSlot,
            memoryMiB: Double(slots * FlowTable.bytesPerSlot) / 1_048_576,
            nanosecondsPerInsert: median(inserts),
            nanosecondsPerHit: median(hitTimes),
            nanosecondsPerMiss: median(missTimes),
            evictions: measureEvictions(capacity: keys.count)
        )
    }

    /// Fills a table's slots to 100% with distinct flows, reading the evictions so far at each of `fillPercents`.
    func measureEvictions(capacity: Int) -> [HashReport.Eviction] {
        var table = FlowTable(capacity: capacity, idleTimeout: 60_000, closingTimeout: 5_000, seed: 7)
        let keys = Self.distinctKeys(count: table.slotCount)
        var result: [HashReport.Eviction] = []
        var inserted = 0
        for percent in Self.fillPercents {
            while inserted < table.slotCount * percent / 100 {
                table.insert(keys[inserted], now: 1)
                inserted += 1
            }
            let evicted = 100 * Double(table.counters.evicted) / Double(inserted)
            result.append(.init(slotFillPercent: percent, evictedPercentOfInserts: evicted))
        }
        return result
    }

    /// Flows that are all different: IPv6 clients numbered 0, 1, 2, ...
    static func distinctKeys(count: Int) -> [FlowKey] {
        (0..<count).map {
            FlowKey(
                client: IPAddress(high: 0x2001_0DB8_0000_0000, low: UInt64($0)), clientPort: 40000, serverPort: 443,
                proto: .tcp)
        }
    }

    func measureTable(algorithm: TableAlgorithm, view: MembershipView) -> HashReport.TableFigures {
        let builder = try! TableBuilder(seed: seed, bucketCount: buckets, algorithm: algorithm)
        var table = builder.build(view, generation: 1)
        let buildNs = nanosecondsPerOperation(operations: 1) { table = builder.build(view, generation: 1) }
        let logs = builder.logs(for: view.ids)
        let keptNs = nanosecondsPerOperation(operations: 1) { table = builder.build(view, generation: 1, logs: logs) }

        let shares = table.shares
        let total = Double(view.totalWeight)
        let worstDeviation =
            view.members.map { member in
                let ideal = Double(buckets) * Double(member.weight) / total
                return abs(Double(shares[member.id] ?? 0) - ideal) / ideal
            }.max() ?? 0

        // A node in the middle of the ID range leaves; a new node with the median weight joins.
        let leaving = view.members[view.members.count / 2].id
        let afterLeave = builder.build(view.removing(leaving), generation: 2)
        let leaveMoved = table.changedBuckets(comparedTo: afterLeave)
        let leaveExtra = leaveMoved.filter { table.owner(ofBucket: $0) != leaving }

        let joining = Member(id: NodeID(view.members.count + 1)!, weight: view.members[view.members.count / 2].weight)
        let afterJoin = builder.build(try! view.adding(joining), generation: 2)
        let joinMoved = table.changedBuckets(comparedTo: afterJoin)
        let joinExtra = joinMoved.filter { afterJoin.owner(ofBucket: $0) != joining.id }

        let percent = { (count: Int) in 100 * Double(count) / Double(buckets) }
        return .init(
            algorithm: algorithm.rawValue,
            view: view.description,
            nodes: view.members.count,
            buildMilliseconds: buildNs / 1e6,
            buildFromKeptLogsMilliseconds: keptNs / 1e6,
            worstShareDeviationPercent: 100 * worstDeviation,
            leaveMovedPercent: percent(leaveMoved.count),
            leaveMovedBetweenOthersPercent: percent(leaveExtra.count),
            joinMovedPercent: percent(joinMoved.count),
            joinMovedBetweenOthersPercent: percent(joinExtra.count)
        )
    }
}

/// Keeps a result alive so the optimiser cannot drop the loop that computed it.
@inline(never)
func blackHole(_ value: UInt64) {
    if value == 0x5EED_5EED_5EED_5EED { print("") }
}
