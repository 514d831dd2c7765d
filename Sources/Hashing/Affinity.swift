/// Which part of a client's identity chooses its bucket, as in NLB's affinity modes.
///
/// The bucket key is three VH1 words: the two address words (masked for `network`) and the client port (0 unless
/// `none`), hashed with the farm's bucket seed. The protocol and the server port are not in the key, so a client's
/// TCP and UDP traffic to one port number share a bucket.
///
/// **Fragments.** Only the first fragment of an IP datagram carries ports, so every fragment (IPv4 MF set or a nonzero
/// offset, or an IPv6 fragment header) is keyed as if its port were 0. All fragments of a datagram therefore land on
/// one node: under `single` and `network` that is the node of the flow's other packets; under `none` it is the node
/// that owns the client's port-0 bucket, which may differ. Farms whose clients send fragmented datagrams should use
/// `single` (NLB gives the same advice).
public enum Affinity: String, CaseIterable, Sendable {
    /// Client address and client port: every connection is balanced on its own.
    case none
    /// Client address only: every connection of a client goes to one node.
    case single
    /// The client's /24 (IPv4) or /64 (IPv6): every client behind one NAT pool or proxy farm goes to one node.
    case network

    /// The bucket hash of a flow: identical on every node of the farm.
    ///
    /// - Parameters:
    ///   - key: the flow.
    ///   - isFragment: whether the packet is an IP fragment (see the type's note on fragments).
    ///   - seed: the farm's seed.
    @inlinable
    public func bucketHash(of key: FlowKey, isFragment: Bool, seed: FarmSeed) -> UInt64 {
        let high = key.client.high
        var low = key.client.low
        var port: UInt64 = 0
        switch self {
        case .none:
            port = isFragment ? 0 : UInt64(key.clientPort)
        case .single:
            break
        case .network:
            // IPv4 lives in the low word (mapped), so /24 clears its last byte; IPv6 /64 clears the whole low word.
            if key.client.isIPv4 { low &= ~0xFF } else { low = 0 }
        }
        return FlowHash.hash(seed: seed.forDomain(.bucket), high, low, port)
    }
}
