/// Integer-only logarithms, so that table builders give bit-identical results on every architecture (a libm `log`
/// may differ in its last bit between platforms, and one different bit reorders two nodes).
enum FixedPointLog {
    /// Fraction bits of the results.
    static let fractionBits = 24

    /// `-log2(u / 2^64)` in Q.24 fixed point for a uniform 64-bit `u` (0 is treated as 1); always at least 1.
    ///
    /// The fraction comes from repeated squaring of a 32-bit mantissa (the classic bit-by-bit log2), exact to within
    /// one unit in the last place of the truncated mantissa.
    static func negativeLog2Q24(_ u: UInt64) -> UInt64 {
        let value = max(u, 1)
        let leadingZeros = value.leadingZeroBitCount
        let exponent = UInt64(63 - leadingZeros)
        // Mantissa in [1, 2) as Q1.31: the top 32 bits after normalising.
        var mantissa = (value << leadingZeros) >> 32
        var fraction: UInt64 = 0
        for _ in 0..<fractionBits {
            mantissa = (mantissa &* mantissa) >> 31
            fraction <<= 1
            if mantissa >= 1 << 32 {
                mantissa >>= 1
                fraction |= 1
            }
        }
        let log2Value = exponent << fractionBits | fraction
        return (64 << fractionBits) - log2Value
    }
}
