import CKernel
import Hashing

/// A classic BPF socket filter for a UDP socket that takes only datagrams of one size, starting with one 4-byte magic,
/// sent with TTL (hop limit) 255 from one of a set of addresses. Everything else is dropped in the kernel before it is
/// queued: junk costs the receiver no wake-up, no copy and no queue space, and cannot crowd out real datagrams.
///
/// TTL 255 (RFC 5082, GTSM; VRRP does the same) proves the sender is on the segment: every router decrements it.
/// A UDP socket's filter sees the UDP header at offset 0; the IP header is reached through `SKF_NET_OFF`.
///
/// A source may also be *pinned*: its datagrams must carry one 8-byte value at `pinnedOffset` of the payload (a
/// heartbeat's incarnation). A flood that spoofs a live peer's address then reaches the socket only if it also
/// carries that peer's current incarnation, which a sender that does not sniff the segment cannot know.
public struct DatagramFilter: Sendable, Equatable {
    public let payloadSize: Int
    public let magic: UInt32
    public let sources: [IPAddress]
    /// Where in the payload the pinned value is, and the value per pinned source.
    public let pinnedOffset: Int
    public let pinned: [IPAddress: UInt64]

    public init(
        payloadSize: Int, magic: UInt32, sources: [IPAddress], pinnedOffset: Int = 0, pinned: [IPAddress: UInt64] = [:]
    ) {
        self.payloadSize = payloadSize
        self.magic = magic
        self.sources = sources
        self.pinnedOffset = pinnedOffset
        self.pinned = pinned
    }

    /// The same filter with other pinned values.
    public func pinning(_ pinned: [IPAddress: UInt64]) -> DatagramFilter {
        DatagramFilter(
            payloadSize: payloadSize, magic: magic, sources: sources, pinnedOffset: pinnedOffset, pinned: pinned)
    }

    private enum Target { case next, accept, drop, skip(Int) }
    private struct Step {
        var code: UInt16
        var k: UInt32
        var ifTrue: Target = .next
        var ifFalse: Target = .next
    }

    private static let loadLength: UInt16 = 0x80  // BPF_LD | BPF_W | BPF_LEN
    private static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
    private static let loadByte: UInt16 = 0x30  // BPF_LD | BPF_B | BPF_ABS
    private static let jumpIfEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
    private static let returnValue: UInt16 = 0x06  // BPF_RET | BPF_K
    private static let network = UInt32(bitPattern: -0x10_0000)  // SKF_NET_OFF

    /// The program as the kernel takes it.
    public func instructions(ipv4: Bool) -> [sock_filter] {
        var steps: [Step] = [
            Step(code: Self.loadLength, k: 0),
            Step(code: Self.jumpIfEqual, k: UInt32(8 + payloadSize), ifFalse: .drop),
            Step(code: Self.loadWord, k: 8),
            Step(code: Self.jumpIfEqual, k: magic, ifFalse: .drop),
            Step(code: Self.loadByte, k: Self.network &+ (ipv4 ? 8 : 7)),
            Step(code: Self.jumpIfEqual, k: 255, ifFalse: .drop),
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
                steps.append(Step(code: Self.loadWord, k: Self.network &+ firstOffset + UInt32(index * 4)))
                let last = index == words.count - 1
                steps.append(
                    Step(
                        code: Self.jumpIfEqual, k: word, ifTrue: last && pin == nil ? .accept : .next,
                        ifFalse: .skip(remaining)))
            }
            if let pin {
                let offset = UInt32(8 + pinnedOffset)  // after the UDP header
                steps.append(Step(code: Self.loadWord, k: offset))
                steps.append(Step(code: Self.jumpIfEqual, k: UInt32(pin >> 32), ifFalse: .drop))
                steps.append(Step(code: Self.loadWord, k: offset + 4))
                steps.append(
                    Step(code: Self.jumpIfEqual, k: UInt32(truncatingIfNeeded: pin), ifTrue: .accept, ifFalse: .drop))
            }
        }
        if !fits || checked.isEmpty {
            steps.append(Step(code: Self.returnValue, k: UInt32.max))
        }
        steps.append(Step(code: Self.returnValue, k: 0))  // drop
        steps.append(Step(code: Self.returnValue, k: UInt32.max))  // accept
        let dropIndex = steps.count - 2
        let acceptIndex = steps.count - 1
        return steps.enumerated().map { index, step in
            func offset(_ target: Target) -> UInt8 {
                switch target {
                case .next: 0
                case .skip(let count): UInt8(count)
                case .drop: UInt8(dropIndex - index - 1)
                case .accept: UInt8(acceptIndex - index - 1)
                }
            }
            return sock_filter(code: step.code, jt: offset(step.ifTrue), jf: offset(step.ifFalse), k: step.k)
        }
    }

    private static func words(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: 16, by: 4).map { start in
            bytes[start..<(start + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
    }
}
