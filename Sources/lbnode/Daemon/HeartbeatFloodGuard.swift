/// Whether the heartbeat loop may keep its real-time priority. Reading heartbeats normally takes it microseconds per
/// interval; a flood on the heartbeat port that its kernel filter cannot drop (datagrams spoofing a dead peer, whose
/// incarnation nothing pins) keeps it reading, and a `SCHED_FIFO` thread that reads without pause holds the engine and
/// the kernel's receive work off its CPU. So once reading takes more than a quarter of a 100 ms window the loop goes
/// back to the normal policy, where the scheduler shares the CPU, and it returns to real-time after a second of calm.
struct HeartbeatFloodGuard {
    /// The window over which the share of time spent reading is measured, in ms.
    static let windowMilliseconds = 100
    /// Reading more than this share of a window is a flood.
    static let floodedShare = 0.25
    /// A flood has ended after this many windows in a row, each read for less than `calmShare` of it.
    static let calmWindows = 10
    static let calmShare = 0.05

    enum Change: Equatable {
        /// Reading took more than `floodedShare` of a window: `datagramsPerSecond` reached the socket.
        case flooded(datagramsPerSecond: Int)
        /// `calmWindows` windows in a row were calm.
        case calm
    }

    private(set) var flooded = false
    private var windowStart: Int
    private var readingMicroseconds = 0
    private var datagrams = 0
    private var calmInARow = 0

    init(now: Int) { windowStart = now }

    /// The loop spent `microseconds` reading `count` datagrams at `now` (ms); a change of state, if any. A flood is
    /// found as soon as the window's reading passes the share, not only at its end: the loop leaves real-time within
    /// 25 ms of a flood's start.
    mutating func noteReading(microseconds: Int, datagrams count: Int, now: Int) -> Change? {
        let change = closeWindows(now: now)
        readingMicroseconds += microseconds
        datagrams += count
        if !flooded && Double(readingMicroseconds) > Self.floodedShare * Double(Self.windowMilliseconds * 1000) {
            flooded = true
            calmInARow = 0
            let elapsed = max(1, now - windowStart)
            return .flooded(datagramsPerSecond: datagrams * 1000 / elapsed)
        }
        return change
    }

    /// Ends the windows that `now` is past; `.calm` when a flood ended with them.
    private mutating func closeWindows(now: Int) -> Change? {
        guard now - windowStart >= Self.windowMilliseconds else { return nil }
        let windows = (now - windowStart) / Self.windowMilliseconds
        let calm = Double(readingMicroseconds) < Self.calmShare * Double(windows * Self.windowMilliseconds * 1000)
        // Windows after the first passed without any reading: calm ones.
        calmInARow = calm ? calmInARow + windows : 0
        windowStart += windows * Self.windowMilliseconds
        readingMicroseconds = 0
        datagrams = 0
        guard flooded, calmInARow >= Self.calmWindows else { return nil }
        flooded = false
        return .calm
    }
}
