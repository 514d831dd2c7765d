import Testing

@testable import Hashing

struct AffinityTests {
    let seed = FarmSeed(farmName: "affinity")

    func key(_ address: String, _ port: UInt16, proto: IPProtocol = .tcp) -> FlowKey {
        FlowKey(client: IPAddress(address)!, clientPort: port, serverPort: 80, proto: proto)
    }

    @Test func noneSeparatesPortsOfOneClient() {
        let hashes = Set(
            (1000..<1100).map {
                Affinity.none.bucketHash(
                    of: key("198.18.5.5", $0), isFragment: false,
                    seed: seed)
            })
        #expect(hashes.count == 100)
    }

    @Test func singleKeepsAllPortsOfOneClientTogether() {
        let hashes = Set(
            (1000..<1100).map {
                Affinity.single.bucketHash(
                    of: key("198.18.5.5", $0),
                    isFragment: false, seed: seed)
            })
        #expect(hashes.count == 1)
        #expect(
            Affinity.single.bucketHash(of: key("198.18.5.6", 1000), isFragment: false, seed: seed)
                != hashes.first)
    }

    @Test func networkGroupsIPv4By24AndIPv6By64() {
        let a = Affinity.network.bucketHash(of: key("198.18.5.1", 1), isFragment: false, seed: seed)
        let b = Affinity.network.bucketHash(of: key("198.18.5.254", 9), isFragment: false, seed: seed)
        let c = Affinity.network.bucketHash(of: key("198.18.6.1", 1), isFragment: false, seed: seed)
        #expect(a == b)
        #expect(a != c)
        let d = Affinity.network.bucketHash(of: key("2001:db8:1:2::1", 1), isFragment: false, seed: seed)
        let e = Affinity.network.bucketHash(of: key("2001:db8:1:2:ffff::9", 7), isFragment: false, seed: seed)
        let f = Affinity.network.bucketHash(of: key("2001:db8:1:3::1", 1), isFragment: false, seed: seed)
        #expect(d == e)
        #expect(d != f)
    }

    @Test func fragmentsOfADatagramShareOneBucketUnderEveryAffinity() {
        // The first fragment carries the real port, later ones carry none (0): both must hash alike.
        let first = key("198.18.9.9", 5353, proto: .udp)
        let later = key("198.18.9.9", 0, proto: .udp)
        for affinity in Affinity.allCases {
            #expect(
                affinity.bucketHash(of: first, isFragment: true, seed: seed)
                    == affinity.bucketHash(of: later, isFragment: true, seed: seed))
        }
        // Under single, fragments also go where the flow's unfragmented packets go.
        #expect(
            Affinity.single.bucketHash(of: first, isFragment: true, seed: seed)
                == Affinity.single.bucketHash(of: first, isFragment: false, seed: seed))
    }

    @Test func protocolAndServerPortAreNotInTheBucketKey() {
        let tcp = FlowKey(client: IPAddress("198.18.1.1")!, clientPort: 999, serverPort: 80, proto: .tcp)
        let udp = FlowKey(client: IPAddress("198.18.1.1")!, clientPort: 999, serverPort: 53, proto: .udp)
        #expect(
            Affinity.none.bucketHash(of: tcp, isFragment: false, seed: seed)
                == Affinity.none.bucketHash(of: udp, isFragment: false, seed: seed))
    }
}
