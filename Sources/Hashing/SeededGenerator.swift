/// A seeded random generator (SplitMix64 with the VH1 finalizer), for reproducible benchmark inputs and property
/// tests. Not for anything secret.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= FlowHash.stepConstant
        return FlowHash.fmix64(state)
    }
}
