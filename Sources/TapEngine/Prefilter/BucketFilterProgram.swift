import Hashing

/// What a bucket filter program is built from: what the farm's classic filter checks (the receive MAC, the VIP, ARP
/// and neighbour solicitations for it) and what places a frame in a bucket (seed, bucket count, port rules). A state
/// of another shape needs another program; the bits of which buckets pass change with every state, in the map.
struct BucketFilterShape: Equatable {
    struct Rule: Equatable {
        var proto: IPProtocol?
        var ports: [ClosedRange<UInt16>]
        /// The affinity that balances the rule's frames; nil: the rule is `single` or `drop`, the engine decides.
        var affinity: Affinity?
    }

    var vip: IPAddress
    var receiveMAC: UInt64
    var seed: UInt64
    var bucketCount: Int
    var rules: [Rule]
    var defaultAffinity: Affinity

    init(state: EngineState, receiveMAC: UInt64) {
        vip = state.vip
        self.receiveMAC = receiveMAC
        seed = state.seed.forDomain(.bucket)
        bucketCount = state.table.count
        rules = state.rules.map { rule in
            let affinity: Affinity? = if case .balanced(let affinity) = rule.mode { affinity } else { nil }
            return Rule(proto: rule.proto, ports: rule.ports, affinity: affinity)
        }
        defaultAffinity = state.defaultAffinity
    }
}

/// Where the kernel delivers frames itself (docs/engine.md, "Kernel delivery"): the TAP whose ingress takes a frame
/// delivered into it (relay), the interface (and its MAC) a forwarded one leaves from, and the heartbeat socket
/// whose existence says that lbnode runs.
struct KernelDeliveryTarget {
    var tapIndex: Int32
    var interfaceIndex: Int32
    var interfaceMAC: UInt64
    /// The address and port lbnode's heartbeat socket is bound to: the classifier acts only while that socket
    /// exists, so a killed lbnode's kernel stops delivering the moment its peers can hear it is gone (the socket
    /// refuses their heartbeats), whatever order its descriptors are released in. Nil: no such check.
    var heartbeat: (address: IPAddress, port: UInt16)? = nil
}

/// The eBPF programs that place a frame in its bucket in the kernel (docs/engine.md, "The prefilter" and "Kernel
/// delivery"), generated from one shape so that they agree on every frame.
///
/// The socket filter keeps other nodes' frames out of the ring. It passes what the farm's classic filter passes
/// (frames to the receive MAC and the VIP, ARP requests and neighbour solicitations for the VIP) with one exception: a
/// TCP or UDP frame that is not a fragment, of a balanced port rule, whose bucket's bit in the map is clear, is dropped
/// before the kernel copies it, and counted. The bucket is VH1 of the same three words the engine hashes
/// (`Affinity.bucketHash`). Whatever it cannot decide it passes to the engine: IPv4 options, IPv6 extension headers,
/// fragments, other protocols, `single` and `drop` rules, frames too short or not linear in the kernel's buffer.
///
/// The classifier runs at the interface's ingress (tcx), after the ring's socket has had its look, and takes the TCP
/// frames of buckets in steady ownership, and UDP frames, out of the engine's way: by the bucket's action in the map
/// it lets the interface's own stack receive the frame as addressed to this host (deliver in place: the VIP is a
/// local address), rewrites the destination MAC and redirects the frame to the TAP's ingress (deliver into the TAP,
/// in relay delivery, where an nftables drop closes the interface's own path to the VIP), rewrites both MACs and
/// sends it out of the interface to the bucket's owner (forward, a director), or drops it (UDP of a bucket this node
/// does not serve). Anything else, and everything once the lease has run out, it leaves alone (`TCX_NEXT`).
///
/// The map is one value that both programs read: counters, the lease, one bit per bucket for TCP and one per bucket
/// for UDP (only TCP needs the buckets in a handover: the flow table decides their connections), then one action per
/// bucket (8 bytes: the destination MAC in wire order, then the TCP kind, then the UDP kind; 0 = the engine
/// decides). One word for both protocols, so that a bucket's action changes with one store.
enum BucketFilterProgram {
    enum Kind {
        case socketFilter
        case classifier(KernelDeliveryTarget)

        var isSocketFilter: Bool { if case .socketFilter = self { true } else { false } }
    }

    /// Value layout: the counters, the lease (CLOCK_BOOTTIME ns; past it the classifier touches nothing), the bits.
    static let passedOffset: Int16 = 0
    static let droppedOffset: Int16 = 8
    static let deliveredOffset: Int16 = 16
    static let forwardedOffset: Int16 = 24
    static let leaseOffset: Int16 = 32
    /// The socket filter's echo budget: tokens, when it last refilled (CLOCK_MONOTONIC ns), pings it dropped.
    static let echoTokensOffset: Int16 = 40
    static let echoRefilledOffset: Int16 = 48
    static let echoDroppedOffset: Int16 = 56
    /// UDP frames the classifier dropped (of buckets this node does not serve).
    static let classifierDroppedOffset: Int16 = 64
    static let bitsOffset: Int16 = 72

    /// Pings to the VIP the socket filter lets into the ring: `echoBurst` at once, then one a millisecond (the
    /// engine's own budget, `AnswerBudget.echo`, is the same per thread): a ping flood stays out of the ring.
    static let echoBurst: Int32 = 1000

    /// An action's kind: for TCP frames in its byte 6, for UDP frames in its byte 7.
    static let deliverIntoTAPKind: UInt64 = 1
    static let forwardKind: UInt64 = 2
    static let deliverInPlaceKind: UInt64 = 3
    /// UDP only: a frame of a bucket this node neither serves nor forwards (`TC_ACT_SHOT`).
    static let dropKind: UInt64 = 4

    /// Where the actions start: after both protocols' bits, 8-byte aligned.
    static func actionsOffset(_ bucketCount: Int) -> Int { (Int(bitsOffset) + 2 * bitBytes(bucketCount) + 7) / 8 * 8 }

    /// Bytes of the whole value.
    static func valueBytes(_ bucketCount: Int) -> Int { actionsOffset(bucketCount) + 8 * bucketCount }

    /// An action: send the frame to `mac` (deliver into the TAP: the TAP's own MAC; in place and drop: unused), by
    /// the kind of its protocol.
    static func action(tcp: UInt64, udp: UInt64, mac: UInt64) -> UInt64 { udp << 56 | tcp << 48 | wireOrder(mac) }

    /// What an action does with a TCP frame.
    static func tcpKind(_ action: UInt64) -> UInt64 { action >> 48 & 0xFF }

    /// What an action does with a UDP frame.
    static func udpKind(_ action: UInt64) -> UInt64 { action >> 56 }

    /// A MAC's six bytes in wire order, as the low bytes of a little-endian word.
    static func wireOrder(_ mac: UInt64) -> UInt64 { (mac & 0xFFFF_FFFF_FFFF).byteSwapped >> 16 }

    /// What the socket filter returns for a frame it keeps: as much of it as the classic filter keeps.
    static let keep = Int32(KernelFilter.snapshotLength)
    /// What the classifier returns for a frame it leaves to the stack and to the programs after it.
    static let next: Int32 = -1
    /// `TCX_PASS`: the frame goes on up the interface's stack, no program after this one runs.
    static let passed: Int32 = 0
    /// `TC_ACT_REDIRECT`, which `bpf_redirect` returns.
    static let redirected: Int32 = 7
    /// `TC_ACT_SHOT`: the frame is dropped.
    static let shot: Int32 = 2
    /// `PACKET_HOST`, the packet type of a frame addressed to this host.
    private static let packetHost: Int32 = 0

    /// Frame byte 0 sits at this stack offset: so placed, the IPv4 addresses are 4-byte aligned and the IPv6 ones
    /// 8-byte aligned, as the verifier requires of stack loads.
    private static let frameBase: Int16 = -70
    /// The map key (0) lives here.
    private static let keySlot: Int16 = -8
    /// The classifier's new MACs are written from here (over the frame's copy, no longer needed by then).
    private static let destinationSlot: Int16 = -24
    private static let sourceSlot: Int16 = -32
    /// The heartbeat socket's `struct bpf_sock_tuple` (40 bytes, below the frame's copy).
    private static let tupleSlot: Int16 = -128

    static func instructions(for shape: BucketFilterShape, map: Int32, kind: Kind = .socketFilter) -> [BPFInstruction] {
        var code = BPFAssembler()
        let pass = code.newLabel(), drop = code.newLabel()
        let hash = code.newLabel(), echo = code.newLabel()
        // Where each affinity's hash words are gathered; only those the rules reach are emitted (the verifier refuses
        // unreachable code).
        var affinityLabels: [Affinity: BPFAssembler.Label] = [:]
        for affinity in Affinity.allCases { affinityLabels[affinity] = code.newLabel() }
        var reached: Set<Affinity> = []

        code.alu(.move, .r6, .r1)  // the packet, for every helper call
        if case .classifier = kind {
            let vlanPresent: Int16 = 20  // struct __sk_buff: a tag the NIC took out goes to the engine
            code.load(.word, .r1, from: .r6, offset: vlanPresent)
            code.jump(if: .r1, .notEqual, 0, to: pass)
        }
        let headerBytes: Int32 = shape.vip.isIPv4 ? 38 : 58  // Ethernet, IP without options, the two ports
        loadBytes(&code, at: 0, count: headerBytes, to: frameBase)
        code.jump(if: .r0, .notEqual, 0, to: pass)  // shorter, or not linear: the engine decides
        code.load(.half, .r7, from: .frame, offset: frameBase + 12)
        code.fromBigEndian(.r7, bits: 16)

        if let v4 = shape.vip.ipv4Value {
            let arp = code.newLabel()
            code.jump(if: .r7, .equal, 0x0806, to: arp)
            code.jump(if: .r7, .notEqual, 0x0800, to: drop)
            checkReceiveMAC(&code, shape.receiveMAC, else: drop)
            code.load(.word, .r1, from: .frame, offset: frameBase + 30)
            code.load(.r2, UInt64(v4.bigEndian))
            code.jump(if: .r1, .notEqual, .r2, to: drop)
            // The VIP's: from here on, what the filter cannot decide goes to the engine.
            code.load(.byte, .r1, from: .frame, offset: frameBase + 14)
            code.jump(if: .r1, .notEqual, 0x45, to: pass)  // IPv4 options
            code.load(.half, .r1, from: .frame, offset: frameBase + 20)
            code.fromBigEndian(.r1, bits: 16)
            code.alu(.and, .r1, 0x3FFF)
            code.jump(if: .r1, .notEqual, 0, to: pass)  // a fragment
            code.load(.byte, .r8, from: .frame, offset: frameBase + 23)
            if kind.isSocketFilter { checkEcho(&code, type: 8, at: frameBase + 34, protocol: 1, echo: echo) }
            code.load(.half, .r9, from: .frame, offset: frameBase + 36)
            code.fromBigEndian(.r9, bits: 16)
            matchRules(&code, shape, pass: pass, labels: affinityLabels, reached: &reached)

            code.place(arp)  // a request (operation 1) for the VIP
            code.load(.half, .r1, from: .frame, offset: frameBase + 20)
            code.fromBigEndian(.r1, bits: 16)
            code.jump(if: .r1, .notEqual, 1, to: drop)
            loadBytes(&code, at: 38, count: 4, to: frameBase + 38)
            code.jump(if: .r0, .notEqual, 0, to: drop)
            code.load(.word, .r1, from: .frame, offset: frameBase + 38)
            code.load(.r2, UInt64(v4.bigEndian))
            code.jump(if: .r1, .equal, .r2, to: pass)
            code.jump(to: drop)

            for affinity in Affinity.allCases where reached.contains(affinity) {
                code.place(affinityLabels[affinity]!)
                code.alu(.move, .r3, 0)
                code.load(.word, .r4, from: .frame, offset: frameBase + 26)
                code.fromBigEndian(.r4, bits: 32)
                code.load(.r1, 0x0000_FFFF_0000_0000)  // IPv4-mapped
                code.alu(.or, .r4, .r1)
                if affinity == .network { code.alu(.and, .r4, -256) }  // the client's /24
                clientPort(&code, affinity, offset: frameBase + 34)
                code.jump(to: hash)
            }
        } else {
            code.jump(if: .r7, .notEqual, 0x86DD, to: drop)
            code.load(.byte, .r8, from: .frame, offset: frameBase + 20)
            let notSolicitation = code.newLabel()
            code.jump(if: .r8, .notEqual, Int32(IPProtocol.icmpv6.rawValue), to: notSolicitation)
            code.load(.byte, .r1, from: .frame, offset: frameBase + 54)
            code.jump(if: .r1, .equal, 135, to: pass)
            code.place(notSolicitation)
            checkReceiveMAC(&code, shape.receiveMAC, else: drop)
            for (index, word) in [shape.vip.high, shape.vip.low].enumerated() {
                code.load(.double, .r1, from: .frame, offset: frameBase + 38 + Int16(index * 8))
                code.load(.r2, word.bigEndian)
                code.jump(if: .r1, .notEqual, .r2, to: drop)
            }
            if kind.isSocketFilter { checkEcho(&code, type: 128, at: frameBase + 54, protocol: 58, echo: echo) }
            code.load(.half, .r9, from: .frame, offset: frameBase + 56)
            code.fromBigEndian(.r9, bits: 16)
            matchRules(&code, shape, pass: pass, labels: affinityLabels, reached: &reached)

            for affinity in Affinity.allCases where reached.contains(affinity) {
                code.place(affinityLabels[affinity]!)
                code.load(.double, .r3, from: .frame, offset: frameBase + 22)
                code.fromBigEndian(.r3, bits: 64)
                if affinity == .network {
                    code.alu(.move, .r4, 0)  // the client's /64
                } else {
                    code.load(.double, .r4, from: .frame, offset: frameBase + 30)
                    code.fromBigEndian(.r4, bits: 64)
                }
                clientPort(&code, affinity, offset: frameBase + 54)
                code.jump(to: hash)
            }
        }

        // r0 = VH1(seed; r3, r4, r5) & (B - 1), kept in r7 across the map lookup.
        code.place(hash)
        code.load(.r0, shape.seed)
        for word in [BPFRegister.r3, .r4, .r5] { step(&code, word) }
        code.alu(.and, .r0, Int32(shape.bucketCount - 1))
        code.alu(.move, .r7, .r0)
        if case .classifier(let target) = kind {
            act(&code, shape, map: map, target: target, pass: pass)
            code.place(drop)
            code.place(pass)
            code.alu(.move, .r0, next)
            code.exit()
            return code.finished()
        }
        lookUp(&code, map: map, else: pass)
        code.alu(.move, .r1, .r7)
        code.alu(.rightShift, .r1, 3)
        let tcpBits = code.newLabel()
        code.jump(if: .r8, .equal, Int32(IPProtocol.tcp.rawValue), to: tcpBits)
        code.alu(.add, .r1, Int32(bitBytes(shape.bucketCount)))
        code.place(tcpBits)
        code.alu(.add, .r1, .r0)
        code.load(.byte, .r1, from: .r1, offset: bitsOffset)
        code.alu(.move, .r2, .r7)
        code.alu(.and, .r2, 7)
        code.alu(.rightShift, .r1, .r2)
        code.alu(.and, .r1, 1)
        code.alu(.move, .r2, 1)
        let other = code.newLabel()
        code.jump(if: .r1, .equal, 0, to: other)
        code.atomicAdd(.r2, to: .r0, offset: passedOffset)
        code.jump(to: pass)
        code.place(other)
        code.atomicAdd(.r2, to: .r0, offset: droppedOffset)

        code.place(drop)
        code.alu(.move, .r0, 0)
        code.exit()
        code.place(pass)
        code.alu(.move, .r0, keep)
        code.exit()
        spendEcho(&code, map: map, at: echo, pass: pass, drop: drop)
        return code.finished()
    }

    /// An echo request (ICMP `type` at `offset`, protocol in r8) goes to the echo budget.
    private static func checkEcho(
        _ code: inout BPFAssembler, type: Int32, at offset: Int16, protocol: Int32, echo: BPFAssembler.Label
    ) {
        let other = code.newLabel()
        code.jump(if: .r8, .notEqual, `protocol`, to: other)
        code.load(.byte, .r1, from: .frame, offset: offset)
        code.jump(if: .r1, .equal, type, to: echo)
        code.place(other)
    }

    /// The echo budget, a token bucket in the map (its read-modify-write is not atomic: frames on two CPUs at once
    /// may both take the last token, which a budget can afford). Beyond it the ping is dropped and counted.
    private static func spendEcho(
        _ code: inout BPFAssembler, map: Int32, at echo: BPFAssembler.Label, pass: BPFAssembler.Label,
        drop: BPFAssembler.Label
    ) {
        code.place(echo)
        lookUp(&code, map: map, else: pass)
        code.alu(.move, .r7, .r0)
        code.call(.monotonicNanoseconds)
        code.load(.double, .r1, from: .r7, offset: echoRefilledOffset)
        code.load(.double, .r3, from: .r7, offset: echoTokensOffset)
        code.alu(.move, .r2, .r0)
        code.alu(.sub, .r2, .r1)
        code.alu(.divide, .r2, 1_000_000)  // whole milliseconds since the last refill: a token each
        let spend = code.newLabel()
        code.jump(if: .r2, .equal, 0, to: spend)
        code.alu(.add, .r3, .r2)
        code.alu(.mul, .r2, 1_000_000)
        code.alu(.add, .r1, .r2)
        code.store(.double, .r1, to: .r7, offset: echoRefilledOffset)
        code.jump(if: .r3, .lessOrEqual, echoBurst, to: spend)
        code.alu(.move, .r3, echoBurst)
        code.place(spend)
        let empty = code.newLabel()
        code.jump(if: .r3, .equal, 0, to: empty)
        code.alu(.sub, .r3, 1)
        code.store(.double, .r3, to: .r7, offset: echoTokensOffset)
        code.jump(to: pass)
        code.place(empty)
        code.store(.double, .r3, to: .r7, offset: echoTokensOffset)
        code.alu(.move, .r2, 1)
        code.atomicAdd(.r2, to: .r7, offset: echoDroppedOffset)
        code.jump(to: drop)
    }

    /// r0 = the map's value, or to `missing` if there is none.
    private static func lookUp(_ code: inout BPFAssembler, map: Int32, else missing: BPFAssembler.Label) {
        code.alu(.move, .r1, 0)
        code.store(.word, .r1, to: .frame, offset: keySlot)
        code.loadMap(.r1, fileDescriptor: map)
        code.alu(.move, .r2, .frame)
        code.alu(.add, .r2, Int32(keySlot))
        code.call(.mapLookupElement)
        code.jump(if: .r0, .equal, 0, to: missing)
    }

    /// The classifier's end (bucket in r7, protocol in r8, TCP or UDP): a frame whose bucket has an action for its
    /// protocol, within the lease, is passed up as this host's, gets its new MACs and is redirected, or is dropped;
    /// anything else goes on to `pass`.
    private static func act(
        _ code: inout BPFAssembler, _ shape: BucketFilterShape, map: Int32, target: KernelDeliveryTarget,
        pass: BPFAssembler.Label
    ) {
        lookUp(&code, map: map, else: pass)
        code.alu(.move, .r1, .r7)
        code.alu(.leftShift, .r1, 3)
        code.alu(.add, .r1, .r0)
        // Added, not a load's offset: that is 16 bits, and the actions start past 32 KiB from 131,072 buckets on.
        code.alu(.add, .r1, Int32(actionsOffset(shape.bucketCount)))
        code.load(.double, .r9, from: .r1, offset: 0)
        // The kind for the frame's protocol, into r8: UDP's in byte 7, TCP's in byte 6.
        let udp = code.newLabel(), kind = code.newLabel()
        code.jump(if: .r8, .notEqual, Int32(IPProtocol.tcp.rawValue), to: udp)
        code.alu(.move, .r8, .r9)
        code.alu(.rightShift, .r8, 48)
        code.alu(.and, .r8, 0xFF)
        code.jump(to: kind)
        code.place(udp)
        code.alu(.move, .r8, .r9)
        code.alu(.rightShift, .r8, 56)
        code.place(kind)
        code.jump(if: .r8, .equal, 0, to: pass)
        code.alu(.move, .r7, .r0)  // the value, across the calls
        code.call(.bootTimeNanoseconds)
        code.load(.double, .r1, from: .r7, offset: leaseOffset)
        code.jump(if: .r0, .greaterOrEqual, .r1, to: pass)
        if let heartbeat = target.heartbeat { requireSocket(&code, heartbeat, else: pass) }
        code.alu(.move, .r2, 1)
        let rewrite = code.newLabel(), forward = code.newLabel()
        let keep = code.newLabel()
        code.jump(if: .r8, .notEqual, Int32(dropKind), to: keep)
        code.atomicAdd(.r2, to: .r7, offset: classifierDroppedOffset)
        code.alu(.move, .r0, shot)
        code.exit()
        code.place(keep)
        code.jump(if: .r8, .notEqual, Int32(deliverInPlaceKind), to: rewrite)
        // In place: the frame was for the virtual MAC (PACKET_OTHERHOST, which IP drops); as this host's, the stack
        // takes it for the VIP, a local address, without the second pass through the receive path a redirect costs.
        code.atomicAdd(.r2, to: .r7, offset: deliveredOffset)
        code.alu(.move, .r1, .r6)
        code.alu(.move, .r2, packetHost)
        code.call(.changeType)
        code.alu(.move, .r0, passed)
        code.exit()

        code.place(rewrite)
        code.store(.double, .r9, to: .frame, offset: destinationSlot)
        storeMAC(&code, at: 0, from: destinationSlot)
        code.jump(if: .r0, .notEqual, 0, to: pass)
        code.alu(.move, .r2, 1)
        code.jump(if: .r8, .equal, Int32(forwardKind), to: forward)
        code.atomicAdd(.r2, to: .r7, offset: deliveredOffset)
        redirect(&code, to: target.tapIndex, ingress: true)

        code.place(forward)
        code.atomicAdd(.r2, to: .r7, offset: forwardedOffset)
        code.load(.r1, wireOrder(target.interfaceMAC))
        code.store(.double, .r1, to: .frame, offset: sourceSlot)
        storeMAC(&code, at: 6, from: sourceSlot)
        redirect(&code, to: target.interfaceIndex, ingress: false)
    }

    /// Goes on only while a UDP socket is bound to `heartbeat` in the frame's network namespace (`bpf_sk_lookup_udp`,
    /// then `bpf_sk_release`), else to `missing`. Clobbers r0-r5.
    private static func requireSocket(
        _ code: inout BPFAssembler, _ heartbeat: (address: IPAddress, port: UInt16), else missing: BPFAssembler.Label
    ) {
        // struct bpf_sock_tuple: the source address and port 0 (any peer), the socket's address and port; IPv4 in
        // 12 bytes, IPv6 in 36. Written in 8-byte words, zero-padded to 40.
        let address = heartbeat.address.bytes
        let port = withUnsafeBytes(of: heartbeat.port.bigEndian) { Array($0) }
        let tuple = [UInt8](repeating: 0, count: address.count) + address + [0, 0] + port
        let padded = tuple + [UInt8](repeating: 0, count: 40 - tuple.count)
        for word in 0..<5 {
            let value = padded[word * 8..<word * 8 + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            code.load(.r1, value)
            code.store(.double, .r1, to: .frame, offset: tupleSlot + Int16(word * 8))
        }
        code.alu(.move, .r1, .r6)
        code.alu(.move, .r2, .frame)
        code.alu(.add, .r2, Int32(tupleSlot))
        code.alu(.move, .r3, Int32(tuple.count))
        code.alu(.move, .r4, -1)  // BPF_F_CURRENT_NETNS
        code.alu(.move, .r5, 0)
        code.call(.skLookupUDP)
        code.jump(if: .r0, .equal, 0, to: missing)
        code.alu(.move, .r1, .r0)
        code.call(.skRelease)
    }

    /// `bpf_skb_store_bytes(skb, offset, fp + slot, 6, 0)`: r0 is 0 when it wrote them.
    private static func storeMAC(_ code: inout BPFAssembler, at offset: Int32, from slot: Int16) {
        code.alu(.move, .r1, .r6)
        code.alu(.move, .r2, offset)
        code.alu(.move, .r3, .frame)
        code.alu(.add, .r3, Int32(slot))
        code.alu(.move, .r4, 6)
        code.alu(.move, .r5, 0)
        code.call(.storeBytes)
    }

    /// Returns `bpf_redirect(index, ingress ? BPF_F_INGRESS : 0)`.
    private static func redirect(_ code: inout BPFAssembler, to index: Int32, ingress: Bool) {
        code.alu(.move, .r1, index)
        code.alu(.move, .r2, ingress ? 1 : 0)
        code.call(.redirect)
        code.exit()
    }

    /// Bytes of one protocol's bucket bits.
    static func bitBytes(_ bucketCount: Int) -> Int { max(1, bucketCount / 8) }

    /// `bpf_skb_load_bytes_relative(skb, offset, fp + stack, count, BPF_HDR_START_MAC)`: r0 is 0 when it read them.
    private static func loadBytes(_ code: inout BPFAssembler, at offset: Int32, count: Int32, to stack: Int16) {
        code.alu(.move, .r1, .r6)
        code.alu(.move, .r2, offset)
        code.alu(.move, .r3, .frame)
        code.alu(.add, .r3, Int32(stack))
        code.alu(.move, .r4, count)
        code.alu(.move, .r5, 0)
        code.call(.loadBytesRelative)
    }

    /// The destination MAC, three big-endian halves, against `mac`.
    private static func checkReceiveMAC(
        _ code: inout BPFAssembler, _ mac: UInt64, else drop: BPFAssembler.Label
    ) {
        for half in 0..<3 {
            code.load(.half, .r1, from: .frame, offset: frameBase + Int16(half * 2))
            code.fromBigEndian(.r1, bits: 16)
            code.jump(if: .r1, .notEqual, Int32(mac >> (32 - 16 * half) & 0xFFFF), to: drop)
        }
    }

    /// The port rules in order (protocol in r8, server port in r9): the first that matches sends the frame to its
    /// affinity's hash, or (`single`, `drop`) to the engine; none: the default affinity.
    private static func matchRules(
        _ code: inout BPFAssembler, _ shape: BucketFilterShape, pass: BPFAssembler.Label,
        labels: [Affinity: BPFAssembler.Label], reached: inout Set<Affinity>
    ) {
        func label(_ affinity: Affinity) -> BPFAssembler.Label {
            reached.insert(affinity)
            return labels[affinity]!
        }
        let transport = code.newLabel()
        code.jump(if: .r8, .equal, Int32(IPProtocol.tcp.rawValue), to: transport)
        code.jump(if: .r8, .notEqual, Int32(IPProtocol.udp.rawValue), to: pass)
        code.place(transport)
        for rule in shape.rules {
            let next = code.newLabel(), matched = code.newLabel()
            if let proto = rule.proto { code.jump(if: .r8, .notEqual, Int32(proto.rawValue), to: next) }
            if !rule.ports.isEmpty {
                for range in rule.ports {
                    let nextRange = code.newLabel()
                    code.jump(if: .r9, .less, Int32(range.lowerBound), to: nextRange)
                    code.jump(if: .r9, .lessOrEqual, Int32(range.upperBound), to: matched)
                    code.place(nextRange)
                }
                code.jump(to: next)
            }
            code.place(matched)
            code.jump(to: rule.affinity.map(label) ?? pass)
            code.place(next)
        }
        code.jump(to: label(shape.defaultAffinity))
    }

    /// r5 = the client port (big-endian at `offset` on the stack) under `none`, else 0.
    private static func clientPort(_ code: inout BPFAssembler, _ affinity: Affinity, offset: Int16) {
        guard affinity == .none else {
            code.alu(.move, .r5, 0)
            return
        }
        code.load(.half, .r5, from: .frame, offset: offset)
        code.fromBigEndian(.r5, bits: 16)
    }

    /// One VH1 step on r0 with `word`: r0 = fmix64((r0 ^ word) + stepConstant), r1 and r2 scratch.
    private static func step(_ code: inout BPFAssembler, _ word: BPFRegister) {
        code.alu(.xor, .r0, word)
        code.load(.r1, FlowHash.stepConstant)
        code.alu(.add, .r0, .r1)
        for multiplier: UInt64 in [0xFF51_AFD7_ED55_8CCD, 0xC4CE_B9FE_1A85_EC53] {
            xorShift(&code)
            code.load(.r2, multiplier)
            code.alu(.mul, .r0, .r2)
        }
        xorShift(&code)
    }

    /// r0 ^= r0 >> 33.
    private static func xorShift(_ code: inout BPFAssembler) {
        code.alu(.move, .r1, .r0)
        code.alu(.rightShift, .r1, 33)
        code.alu(.xor, .r0, .r1)
    }
}
