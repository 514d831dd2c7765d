import Testing

@testable import Hashing

/// Returns its argument: `#expect` cannot take apart a call on a noncopyable value, but it can take a plain one.
func evaluated<T>(_ value: T) -> T { value }

struct FlowTableTests {
    static func flow(_ index: Int, port: UInt16 = 80) -> FlowKey {
        FlowKey(
            client: IPAddress(ipv4: 0xC612_0000 | UInt32(index)), clientPort: UInt16(truncatingIfNeeded: index),
            serverPort: port, proto: .tcp)
    }

    @Test func insertThenLookupHitsAndOthersMiss() {
        var table = FlowTable(capacity: 1024, idleTimeout: 1000, closingTimeout: 100, seed: 1)
        #expect(evaluated(table.insert(Self.flow(1), now: 0)) == .inserted)
        #expect(evaluated(table.insert(Self.flow(1), now: 5)) == .alreadyPresent)
        #expect(evaluated(table.lookup(Self.flow(1), now: 10)))
        #expect(!evaluated(table.lookup(Self.flow(2), now: 10)))
        #expect(!evaluated(table.lookup(Self.flow(1, port: 443), now: 10)))
        #expect(table.count == 1)
        #expect(table.counters.inserted == 1)
    }

    @Test func flowsExpireAfterTheIdleTimeoutUnlessSeen() {
        var table = FlowTable(capacity: 64, idleTimeout: 1000, closingTimeout: 100, seed: 2)
        table.insert(Self.flow(1), now: 0)
        table.insert(Self.flow(2), now: 0)
        #expect(evaluated(table.lookup(Self.flow(1), now: 1000)))  // age 1000 = timeout: still alive, and refreshed
        #expect(evaluated(table.contains(Self.flow(1), now: 2000)))
        #expect(!evaluated(table.contains(Self.flow(2), now: 1001)))
        #expect(!evaluated(table.lookup(Self.flow(2), now: 1001)))
        #expect(table.counters.expired == 1)
        #expect(table.count == 1)
    }

    @Test func closingFlowsLingerOnlyForTheClosingTimeout() {
        var table = FlowTable(capacity: 64, idleTimeout: 60_000, closingTimeout: 100, seed: 3)
        table.insert(Self.flow(1), now: 0)
        #expect(evaluated(table.markClosing(Self.flow(1), now: 10)))
        #expect(evaluated(table.lookup(Self.flow(1), now: 100)))  // the last ACK still finds it
        #expect(!evaluated(table.lookup(Self.flow(1), now: 201)))
        #expect(!evaluated(table.markClosing(Self.flow(9), now: 10)))
    }

    @Test func removeForgetsAFlowAtOnce() {
        var table = FlowTable(capacity: 64, idleTimeout: 60_000, closingTimeout: 100, seed: 4)
        table.insert(Self.flow(1), now: 0)
        #expect(evaluated(table.remove(Self.flow(1))))
        #expect(!evaluated(table.remove(Self.flow(1))))
        #expect(!evaluated(table.contains(Self.flow(1), now: 1)))
        #expect(table.counters.removed == 1)
        #expect(table.count == 0)
    }

    @Test func aFullSetEvictsItsLeastRecentlySeenFlow() {
        // Capacity 7 is a single set of 8 slots, so both choices of every flow are that set.
        var table = FlowTable(capacity: 7, idleTimeout: 60_000, closingTimeout: 100, seed: 5)
        #expect(table.slotCount == 8)
        for index in 0..<8 { #expect(evaluated(table.insert(Self.flow(index), now: UInt32(index))) == .inserted) }
        #expect(evaluated(table.lookup(Self.flow(0), now: 20)))  // flow 0 is now the most recent; flow 1 the oldest
        #expect(evaluated(table.insert(Self.flow(100), now: 21)) == .insertedEvictingOldest)
        #expect(!evaluated(table.contains(Self.flow(1), now: 21)))
        #expect(evaluated(table.contains(Self.flow(0), now: 21)))
        #expect(evaluated(table.contains(Self.flow(100), now: 21)))
        #expect(table.counters.evicted == 1)
        #expect(table.count == 8)
    }

    @Test func expiredSlotsAreReusedBeforeAnythingIsEvicted() {
        var table = FlowTable(capacity: 7, idleTimeout: 10, closingTimeout: 10, seed: 6)
        for index in 0..<8 { table.insert(Self.flow(index), now: 0) }
        #expect(evaluated(table.insert(Self.flow(50), now: 100)) == .inserted)
        #expect(table.counters.evicted == 0)
        #expect(table.counters.expired == 8)
        #expect(table.count == 1)
    }

    @Test func sweepReclaimsExpiredFlows() {
        var table = FlowTable(capacity: 4096, idleTimeout: 50, closingTimeout: 10, seed: 7)
        for index in 0..<3000 { table.insert(Self.flow(index), now: 0) }
        table.insert(Self.flow(5000), now: 40)
        let sets = table.slotCount / FlowTable.ways
        #expect(evaluated(table.expire(now: 60, sets: sets / 2)) + table.expire(now: 60, sets: sets) == 3000)
        #expect(table.count == 1)
        #expect(evaluated(table.contains(Self.flow(5000), now: 60)))
    }

    @Test func holdsItsFullCapacityWithoutEvicting() {
        var table = FlowTable(capacity: 100_000, idleTimeout: 60_000, closingTimeout: 100, seed: 8)
        var random = SeededGenerator(seed: 8)
        let keys = (0..<100_000).map { _ in
            let bits = random.next()
            return FlowKey(
                client: IPAddress(high: 0x2001_0DB8_0000_0000, low: bits), clientPort: UInt16(bits >> 48),
                serverPort: 443, proto: .tcp)
        }
        for key in keys { table.insert(key, now: 1) }
        #expect(table.counters.evicted == 0)
        #expect(keys.allSatisfy { table.contains($0, now: 2) })
        #expect(table.count == keys.count)
    }

    @Test func agesSurviveTheWrapOfTheMillisecondClock() {
        var table = FlowTable(capacity: 64, idleTimeout: 100, closingTimeout: 10, seed: 9)
        table.insert(Self.flow(1), now: UInt32.max - 5)
        #expect(evaluated(table.lookup(Self.flow(1), now: 50)))  // 56 ms later, across the wrap
        #expect(!evaluated(table.lookup(Self.flow(1), now: 151)))
    }

    @Test func reportsItsMemory() {
        #expect(FlowTable.slots(forCapacity: 1_000_000) == 1 << 21)
        #expect(FlowTable.slots(forCapacity: 900_000) == 1 << 20)
        #expect(FlowTable.slots(forCapacity: 1) == 8)
        #expect(FlowTable.slots(forCapacity: 8) == 16)
        #expect(FlowTable.bytesPerSlot == 16)
    }
}

extension FlowTableTests {
    @Test func keepsAValuePerFlow() {
        var table = FlowTable(capacity: 64, idleTimeout: 1000, closingTimeout: 100, seed: 10)
        table.insert(Self.flow(1), now: 0, value: 7)
        table.insert(Self.flow(2), now: 0, value: 65535)
        #expect(evaluated(table.value(of: Self.flow(1), now: 1)) == 7)
        #expect(evaluated(table.value(of: Self.flow(2), now: 1)) == 65535)
        #expect(evaluated(table.value(of: Self.flow(3), now: 1)) == nil)
        table.insert(Self.flow(1), now: 2, value: 9)  // a refresh sets the value
        table.markClosing(Self.flow(1), now: 3)  // closing keeps it
        #expect(evaluated(table.value(of: Self.flow(1), now: 4)) == 9)
    }
}
