import Hashing

/// The verdicts of recent first fragments, so that the later fragments of a datagram follow its port rule.
///
/// A later fragment has no ports: decided alone it would meet the protocol's default rule and the addresses' bucket,
/// while its first fragment met the rule of its port (`drop`, or `single` with another owner), and the datagram could
/// never be reassembled anywhere. The first fragment's verdict is kept here, by client, protocol and IP
/// identification, for `lifetime` ms; a later fragment takes it. One that comes before its first fragment (reordered),
/// or after its entry was overwritten, is decided alone, as before: the balanced rule gives it the first fragment's
/// bucket anyway (a fragment's bucket is its addresses'), so only `drop` and `single` ports can lose it.
///
/// Direct-mapped, fixed size, no allocation after `init`: a flood of fragments overwrites entries, nothing more.
/// Each engine thread has its own (the fanout keeps a client's fragments on one thread).
public struct FragmentTable: ~Copyable {
    struct Entry {
        var client = IPAddress(high: 0, low: 0)
        var identification: UInt32 = 0
        var proto: UInt8 = 0
        var used = false
        var at: UInt32 = 0
        var verdict = Verdict.drop(.notOwner)
    }

    public static let slots = 1024
    /// How long a first fragment's verdict holds, in ms: the rest of a datagram follows within a few ms on a LAN.
    public static let lifetime: UInt32 = 5_000

    private var entries: [Entry]

    public init() {
        entries = Array(repeating: Entry(), count: Self.slots)
    }

    @inline(__always)
    private static func slot(of frame: Frame) -> Int {
        let mixed = (frame.key.client.high ^ frame.key.client.low ^ UInt64(frame.fragmentID) << 8
            ^ UInt64(frame.key.proto.rawValue)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> 54) & (slots - 1)
    }

    /// The verdict of `frame`'s first fragment, if `frame` is a later fragment whose first one was decided within the
    /// lifetime.
    @inline(__always)
    public func verdict(ofLater frame: Frame, now: UInt32) -> Verdict? {
        guard frame.isLaterFragment else { return nil }
        let entry = entries[Self.slot(of: frame)]
        guard entry.used, entry.identification == frame.fragmentID, entry.proto == frame.key.proto.rawValue,
            entry.client == frame.key.client, now &- entry.at < Self.lifetime
        else { return nil }
        return entry.verdict
    }

    /// Keeps `verdict` if `frame` is a first fragment.
    @inline(__always)
    public mutating func remember(_ frame: Frame, _ verdict: Verdict, now: UInt32) {
        guard frame.isFragment, !frame.isLaterFragment, !frame.isICMPError else { return }
        entries[Self.slot(of: frame)] = Entry(
            client: frame.key.client, identification: frame.fragmentID, proto: frame.key.proto.rawValue, used: true,
            at: now, verdict: verdict)
    }
}
