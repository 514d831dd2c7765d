extension Duration {
    /// Whole milliseconds (truncated): the unit of lbnode's clocks, heartbeats and deadlines.
    var wholeMilliseconds: Int {
        let parts = components
        return Int(parts.seconds) * 1000 + Int(parts.attoseconds / 1_000_000_000_000_000)
    }
}
