/// What a delivery mode means for one node (the director or another), in one place: which frames it decides, the
/// MAC its clients send to, whether it forwards, and how it announces the VIP.
public struct DeliveryRole: Sendable, Equatable {
    /// Client frames for the VIP reaching this node are its to decide. Not so for a node other than the director in
    /// directed delivery: the director forwards it its frames, which the kernel takes.
    public let decidesClientFrames: Bool
    /// Clients send to this node's own MAC, not the virtual MAC (relay): it receives on it, answers ARP and announces
    /// with it, a frame from a peer's MAC was relayed to it, and a client whose ARP entry is old sends to another node.
    public let usesOwnMAC: Bool
    /// Sends a client's frames of buckets it does not own to their owner.
    public let forwards: Bool
    /// Forwards every frame of a bucket it does not own, whoever sent it, so the kernel's classifier may do it. Not in
    /// relay delivery, where a frame a peer relayed is delivered, not relayed again.
    public let forwardsWholeBuckets: Bool
    /// Routes the TCP connections of a bucket in a planned handover by connection, between its old and new owner.
    public let steersHandovers: Bool
    /// Sends a node stopped for a restart the segments of its connections in the buckets this node took from it
    /// (flood: nobody else would, and they would wait for the node's return).
    public let sendsStoppedOwnersTheirConnections: Bool
    /// Receives the frames of every bucket; in flood delivery a node needs only those it serves.
    public let seesEveryBucket: Bool
    /// Announces the VIP from the virtual MAC, so that switches learn it on this node's port (the directed director).
    public let announcesVirtualMAC: Bool
    /// After its first announcements, announces once a second instead of every 200 ms (the relay director: clients'
    /// ARP entries name it, not a MAC a switch must keep learning).
    public let announcesSlowlyOnceSettled: Bool
    /// The interface's own stack may take a frame for the VIP (a local address, which Linux accepts on every
    /// interface), so kernel delivery passes its frames up there. Not in relay delivery, where an nftables drop closes
    /// that path (`IngressDrop`) and kernel delivery redirects them into the TAP.
    public var interfaceTakesVIPFrames: Bool { !usesOwnMAC }

    public init(_ delivery: Delivery, isDirector director: Bool) {
        switch delivery {
        case .flood:
            self.init(
                decidesClientFrames: true, usesOwnMAC: false, forwards: false, forwardsWholeBuckets: false,
                steersHandovers: false, sendsStoppedOwnersTheirConnections: true, seesEveryBucket: false,
                announcesVirtualMAC: false, announcesSlowlyOnceSettled: false)
        case .directed:
            self.init(
                decidesClientFrames: director, usesOwnMAC: false, forwards: director, forwardsWholeBuckets: director,
                steersHandovers: director, sendsStoppedOwnersTheirConnections: false, seesEveryBucket: true,
                announcesVirtualMAC: director, announcesSlowlyOnceSettled: false)
        case .relay:
            self.init(
                decidesClientFrames: true, usesOwnMAC: true, forwards: true, forwardsWholeBuckets: false,
                steersHandovers: director, sendsStoppedOwnersTheirConnections: false, seesEveryBucket: true,
                announcesVirtualMAC: false, announcesSlowlyOnceSettled: true)
        }
    }

    private init(
        decidesClientFrames: Bool, usesOwnMAC: Bool, forwards: Bool, forwardsWholeBuckets: Bool, steersHandovers: Bool,
        sendsStoppedOwnersTheirConnections: Bool, seesEveryBucket: Bool, announcesVirtualMAC: Bool,
        announcesSlowlyOnceSettled: Bool
    ) {
        self.decidesClientFrames = decidesClientFrames
        self.usesOwnMAC = usesOwnMAC
        self.forwards = forwards
        self.forwardsWholeBuckets = forwardsWholeBuckets
        self.steersHandovers = steersHandovers
        self.sendsStoppedOwnersTheirConnections = sendsStoppedOwnersTheirConnections
        self.seesEveryBucket = seesEveryBucket
        self.announcesVirtualMAC = announcesVirtualMAC
        self.announcesSlowlyOnceSettled = announcesSlowlyOnceSettled
    }
}
