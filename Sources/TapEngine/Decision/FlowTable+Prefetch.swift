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
}
