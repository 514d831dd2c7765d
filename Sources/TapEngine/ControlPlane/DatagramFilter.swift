import CKernel
import Hashing

/// A classic BPF socket filter for a UDP socket that takes only datagrams of a range of sizes, starting with one 4-byte
/// magic, sent with TTL (hop limit) 255 from one of a set of addresses. Everything else is dropped in the kernel before
/// it is queued: junk costs the receiver no wake-up, no copy and no queue space, and cannot crowd out real datagrams.
///
/// TTL 255 (RFC 5082, GTSM; VRRP does the same) proves the sender is on the segment: every router decrements it.
/// A UDP socket's filter sees the UDP header at offset 0; the IP header is reached through `SKF_NET_OFF`.
///
/// A source may also be *pinned*: its datagrams must carry one 8-byte value at `pinnedOffset` of the payload (a
/// heartbeat's incarnation). A flood that spoofs a live peer's address then reaches the socket only if it also
/// carries that peer's current incarnation, which a sender that does not sniff the segment cannot know.
public struct DatagramFilter: Sendable, Equatable {
    public let payloadSizes: ClosedRange<Int>
    public let magic: UInt32
    public let sources: [IPAddress]
    /// Where in the payload the pinned value is, and the value per pinned source.
    public let pinnedOffset: Int
    public let pinned: [IPAddress: UInt64]

    public init(
        payloadSizes: ClosedRange<Int>, magic: UInt32, sources: [IPAddress], pinnedOffset: Int = 0,
        pinned: [IPAddress: UInt64] = [:]
    ) {
        self.payloadSizes = payloadSizes
        self.magic = magic
        self.sources = sources
        self.pinnedOffset = pinnedOffset
        self.pinned = pinned
    }

    /// The same filter with other pinned values.
    public func pinning(_ pinned: [IPAddress: UInt64]) -> DatagramFilter {
        DatagramFilter(
            payloadSizes: payloadSizes, magic: magic, sources: sources, pinnedOffset: pinnedOffset, pinned: pinned)
    }

    private typealias Step = ClassicBPF.Step
    private typealias BPF = ClassicBPF

    /// The program as the kernel takes it.
    public func instructions(ipv4: Bool) -> [sock_filter] {
        var steps: [Step] = [
            Step(code: BPF.loadLength, k: 0),
            Step(code: BPF.jumpIfAbove, k: UInt32(8 + payloadSizes.upperBound), ifTrue: .label("drop")),
            Step(code: BPF.jumpIfAtLeast, k: UInt32(8 + payloadSizes.lowerBound), ifFalse: .label("drop")),
            Step(code: BPF.loadWord, k: 8),
            Step(code: BPF.jumpIfEqual, k: magic, ifFalse: .label("drop")),
            Step(code: BPF.loadByte, k: BPF.network &+ (ipv4 ? 8 : 7)),
            Step(code: BPF.jumpIfEqual, k: 255, ifFalse: .label("drop")),
        ]
        // Jumps reach at most 255 instructions ahead: beyond ~60 IPv4 or ~20 IPv6 senders the address check is left
        // to user space.
        let checked = sources.filter { $0.isIPv4 == ipv4 }
        let fits = checked.count * ((ipv4 ? 2 : 8) + 4) < 240
        for source in fits ? checked : [] {
            let words = ipv4 ? [source.ipv4Value!] : Self.words(source.bytes)
            let firstOffset: UInt32 = ipv4 ? 12 : 8
            let pin = pinned[source]
            // Each address: load a word, compare; a mismatch skips to the next address. A pinned one then compares
            // the two words of its value: a mismatch drops the datagram.
            let length = words.count * 2 + (pin == nil ? 0 : 4)
            for (index, word) in words.enumerated() {
                let remaining = length - index * 2 - 2
                steps.append(Step(code: BPF.loadWord, k: BPF.network &+ firstOffset + UInt32(index * 4)))
                let last = index == words.count - 1
                steps.append(
                    Step(
                        code: BPF.jumpIfEqual, k: word, ifTrue: last && pin == nil ? .label("accept") : .next,
                        ifFalse: .skip(remaining)))
            }
            if let pin {
                let offset = UInt32(8 + pinnedOffset)  // after the UDP header
                steps.append(Step(code: BPF.loadWord, k: offset))
                steps.append(Step(code: BPF.jumpIfEqual, k: UInt32(pin >> 32), ifFalse: .label("drop")))
                steps.append(Step(code: BPF.loadWord, k: offset + 4))
                steps.append(
                    Step(
                        code: BPF.jumpIfEqual, k: UInt32(truncatingIfNeeded: pin), ifTrue: .label("accept"),
                        ifFalse: .label("drop")))
            }
        }
        if !fits || checked.isEmpty {
            steps.append(Step(code: BPF.returnValue, k: UInt32.max))
        }
        steps.append(Step(code: BPF.returnValue, k: 0, label: "drop"))
        steps.append(Step(code: BPF.returnValue, k: UInt32.max, label: "accept"))
        return BPF.assemble(steps)
    }

    private static func words(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: 16, by: 4).map { start in
            bytes[start..<(start + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
    }
}
