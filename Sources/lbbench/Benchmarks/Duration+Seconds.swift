extension Duration {
    /// The duration in seconds, with its fraction: what the benchmarks divide counts by.
    var inSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
