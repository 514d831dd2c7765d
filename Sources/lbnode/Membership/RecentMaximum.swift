/// The largest value noted within the last `windowMilliseconds`: a monotonic queue, so that a value noted once drops
/// out when it ages, without scanning everything noted since (`DeadlineTolerance`).
struct RecentMaximum: Equatable {
    struct Noted: Equatable {
        var at: Int
        var value: Int
    }

    let windowMilliseconds: Int
    /// Values that may still become the maximum, oldest (and largest) first, each smaller than the one before it.
    private var candidates: [Noted] = []

    init(windowMilliseconds: Int) { self.windowMilliseconds = windowMilliseconds }

    mutating func note(_ value: Int, now: Int) {
        candidates.removeFirst(candidates.prefix { now - $0.at > windowMilliseconds }.count)
        while let last = candidates.last, last.value <= value { candidates.removeLast() }
        candidates.append(Noted(at: now, value: value))
    }

    /// The largest value noted within the window before `now`, or nil.
    func maximum(now: Int) -> Int? { candidates.first { now - $0.at <= windowMilliseconds }?.value }
}
