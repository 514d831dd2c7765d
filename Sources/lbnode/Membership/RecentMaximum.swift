/// The largest value noted within the last `windowMilliseconds`: a monotonic queue, so that a value noted once drops
/// out when it ages, without scanning everything noted since (`DeadlineTolerance`).
struct RecentMaximum: Equatable {
    let windowMilliseconds: Int
    /// Values that may still become the maximum, oldest (and largest) first, each smaller than the one before it.
    private var candidates: [(at: Int, value: Int)] = []

    init(windowMilliseconds: Int) { self.windowMilliseconds = windowMilliseconds }

    mutating func note(_ value: Int, now: Int) {
        forget(before: now)
        while let last = candidates.last, last.value <= value { candidates.removeLast() }
        candidates.append((now, value))
    }

    /// The largest value noted within the window before `now`, or nil.
    func maximum(now: Int) -> Int? { candidates.first { now - $0.at <= windowMilliseconds }?.value }

    private mutating func forget(before now: Int) {
        if let stale = candidates.firstIndex(where: { now - $0.at <= windowMilliseconds }) {
            candidates.removeFirst(stale)
        } else {
            candidates.removeAll()
        }
    }

    static func == (a: Self, b: Self) -> Bool {
        a.windowMilliseconds == b.windowMilliseconds && a.candidates.elementsEqual(b.candidates) { $0 == $1 }
    }
}
