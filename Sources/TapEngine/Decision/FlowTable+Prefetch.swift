import CKernel
import Hashing

extension FlowTable {
    /// Brings the two sets of `key` into the cache (both cache lines of each) without waiting for them: a lookup
    /// that follows later finds them there instead of waiting for memory.
    @inline(__always)
    public func prefetch(_ key: FlowKey) {
        let (first, second) = sets(of: key)
        vipfarm_prefetch(first)
        vipfarm_prefetch(first + 64)
        vipfarm_prefetch(second)
        vipfarm_prefetch(second + 64)
    }

    /// Prefetches the sets of the connection `outcome` is a frame of, when its decision may look it up (TCP).
    @inline(__always)
    public func prefetch(for outcome: ParseOutcome) {
        if case .frame(let frame) = outcome, frame.key.proto == .tcp { prefetch(frame.key) }
    }
}
