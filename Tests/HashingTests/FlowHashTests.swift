import Testing

@testable import Hashing

/// Test vectors for VH1. The expected values come from an independent implementation of the definition in
/// `docs/hashing.md` (a few lines of Python there), so a change to the hash breaks these on purpose: every node of a
/// farm must agree, so the hash may never change silently.
struct FlowHashTests {
    @Test func fmix64MatchesMurmurHash3() {
        #expect(FlowHash.fmix64(0) == 0)
        #expect(FlowHash.fmix64(1) == 0xB456_BCFC_34C2_CB2C)
        #expect(FlowHash.fmix64(0xDEAD_BEEF) == 0xD24B_D59F_862A_1DAC)
    }

    @Test func vh1Vectors() {
        #expect(FlowHash.hash(seed: 0, 0, 0, 0) == 0x8B11_7E9A_CA1C_F8C2)
        #expect(FlowHash.hash(seed: 1, 2, 3, 4) == 0x941D_5F5E_01D5_5682)
        #expect(FlowHash.hash(seed: 1, words: [2, 3, 4]) == FlowHash.hash(seed: 1, 2, 3, 4))
    }

    @Test func farmSeedVectors() {
        #expect(FarmSeed(farmName: "").value == 0x93CA_46C3_850D_C6FB)
        #expect(FarmSeed(farmName: "web").value == 0xA171_DD84_731F_0C00)
        #expect(FarmSeed(farmName: "vipfarm-production-eu-west").value == 0xB18F_9C77_B9A5_8789)
    }

    @Test func bucketHashVectors() throws {
        let seed = FarmSeed(farmName: "web")
        let v4 = try #require(IPAddress("198.18.0.1"))
        let key = FlowKey(client: v4, clientPort: 40000, serverPort: 80, proto: .tcp)
        #expect(Affinity.none.bucketHash(of: key, isFragment: false, seed: seed) == 0xE7E3_FBE3_725C_BD3E)
        #expect(Affinity.single.bucketHash(of: key, isFragment: false, seed: seed) == 0x296D_ED3D_F88E_318A)
        #expect(Affinity.network.bucketHash(of: key, isFragment: false, seed: seed) == 0xC06C_AC21_1D4A_FD09)
        let v6 = try #require(IPAddress("2001:db8::1"))
        let key6 = FlowKey(client: v6, clientPort: 443, serverPort: 443, proto: .tcp)
        #expect(Affinity.none.bucketHash(of: key6, isFragment: false, seed: seed) == 0x5AED_7E45_AC36_BB88)
    }

    @Test func seedsOfDifferentFarmsDiffer() {
        #expect(FarmSeed(farmName: "web").value != FarmSeed(farmName: "web2").value)
        #expect(FarmSeed(farmName: "a").value != FarmSeed(farmName: "a\u{0}").value)
    }

    @Test func lowBitsAreUniformEnoughForBuckets() {
        // 65536 sequential clients into 4096 buckets: every bucket is used and none is far above the mean of 16.
        let seed = FarmSeed(farmName: "uniformity")
        var counts = [Int](repeating: 0, count: 4096)
        for client in 0..<65536 {
            let key = FlowKey(
                client: IPAddress(ipv4: 0xC612_0000 | UInt32(client)), clientPort: 0, serverPort: 0,
                proto: .udp)
            counts[Int(Affinity.single.bucketHash(of: key, isFragment: false, seed: seed) & 4095)] += 1
        }
        #expect(counts.min()! > 0)
        #expect(counts.max()! < 40)
    }
}
