/// The vipfarm hash, version 1 ("VH1"): fixed, seeded, and identical on every node, run and architecture.
///
/// Defined on 64-bit words (never on memory layout, so byte order cannot change it):
///
///     step(h, w) = fmix64((h ^ w) &+ 0x9E3779B97F4A7C15)
///     VH1(seed; w0, ..., wn-1) = step(...step(step(seed, w0), w1)..., wn-1)
///
/// where `fmix64` is MurmurHash3's 64-bit finalizer (`x ^= x >> 33; x &*= 0xFF51AFD7ED558CCD; x ^= x >> 33;
/// x &*= 0xC4CEB9FE1A85EC53; x ^= x >> 33`). Every step is a bijection of `h`, so distinct keys of one length collide
/// only by chance. Users always hash a fixed number of words, so the length needs no encoding. `docs/hashing.md` has
/// the key encodings and the test vectors that `Tests/HashingTests/FlowHashTests.swift` checks.
///
/// Swift's `Hasher` is never used: it is seeded per process, and nodes must agree.
public enum FlowHash {
    /// The golden-ratio constant added in every step, so that an all-zero input does not stay zero.
    public static let stepConstant: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// MurmurHash3's 64-bit finalizer: a bijection with full avalanche.
    @inlinable @inline(__always)
    public static func fmix64(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }

    /// One VH1 step: folds `word` into `state`.
    @inlinable @inline(__always)
    public static func step(_ state: UInt64, _ word: UInt64) -> UInt64 {
        fmix64((state ^ word) &+ stepConstant)
    }

    /// VH1 of three words, the shape of every flow and bucket key.
    @inlinable @inline(__always)
    public static func hash(seed: UInt64, _ w0: UInt64, _ w1: UInt64, _ w2: UInt64) -> UInt64 {
        step(step(step(seed, w0), w1), w2)
    }

    /// VH1 of any sequence of words (control plane: seeds, digests).
    public static func hash<Words: Sequence>(seed: UInt64, words: Words) -> UInt64 where Words.Element == UInt64 {
        words.reduce(seed, step)
    }
}

/// The per-farm seed of every VH1 hash, derived from the farm's name so that every node of a farm agrees on it.
///
/// `seed = VH1(0x7669706661726D31 ("vipfarm1"); bytes as big-endian 8-byte words, zero-padded; byte count)`
/// over the name's UTF-8 bytes.
public struct FarmSeed: Hashable, Sendable {
    /// The 64-bit seed value.
    public let value: UInt64

    /// A seed given directly (tests and benchmarks).
    public init(value: UInt64) {
        self.value = value
    }

    /// The seed of the farm called `name`.
    public init(farmName name: String) {
        let bytes = Array(name.utf8)
        var words: [UInt64] = stride(from: 0, to: bytes.count, by: 8).map { start in
            (0..<8).reduce(UInt64(0)) { word, offset in
                word << 8 | UInt64(start + offset < bytes.count ? bytes[start + offset] : 0)
            }
        }
        words.append(UInt64(bytes.count))
        value = FlowHash.hash(seed: 0x7669_7066_6172_6D31, words: words)
    }

    /// The seed for one use of the hash: the farm seed xor a fixed domain constant, so that the bucket hash, the
    /// rendezvous scores and the flow table never share a hash.
    public func forDomain(_ domain: HashDomain) -> UInt64 {
        value ^ domain.rawValue
    }
}

/// The uses of VH1, each with its own constant (ASCII of its name) xor-ed into the farm seed.
public enum HashDomain: UInt64, Sendable {
    /// Client keys to buckets: "buckets\0".
    case bucket = 0x6275_636B_6574_7300
    /// Rendezvous scores of (node, bucket): "rendezvo".
    case rendezvous = 0x7265_6E64_657A_766F
    /// Membership view digests: "viewdgst".
    case viewDigest = 0x7669_6577_6467_7374
}
