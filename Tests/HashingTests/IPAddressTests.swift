import Testing

@testable import Hashing

struct IPAddressTests {
    @Test(arguments: [
        ("198.18.0.1", "198.18.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("::", "::"),
        ("::1", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("fe80::", "fe80::"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("::ffff:198.18.0.7", "198.18.0.7"),
        ("64:ff9b::198.18.0.7", "64:ff9b::c612:7"),
    ])
    func parsesAndPrints(text: String, printed: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == printed)
        #expect(IPAddress(printed) == address)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", "1.2.3.4/24", "a.b.c.d",
        ":", ":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "fe80::1%eth0", "::g",
        "1:2:3:4:5:6:7", "::+1", "::1.2.3", "1.2.3.4::",
    ])
    func refusesWhatIsNotAnAddress(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func ipv4IsStoredMappedAndKnowsItsFamily() throws {
        let v4 = try #require(IPAddress("198.18.0.1"))
        #expect(v4.isIPv4)
        #expect(v4.ipv4Value == 0xC612_0001)
        #expect(v4 == IPAddress(ipv4: 0xC612_0001))
        #expect(v4.bytes == [198, 18, 0, 1])
        let v6 = try #require(IPAddress("2001:db8::1"))
        #expect(!v6.isIPv4)
        #expect(v6.bytes.count == 16)
        #expect(IPAddress(bytes: v6.bytes) == v6)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test func masksWithinItsOwnFamily() throws {
        #expect(try #require(IPAddress("198.18.5.77")).masked(toPrefixLength: 24) == IPAddress("198.18.5.0"))
        #expect(try #require(IPAddress("198.18.5.77")).masked(toPrefixLength: 15) == IPAddress("198.18.0.0"))
        #expect(
            try #require(IPAddress("2001:db8:1:2:3:4:5:6")).masked(toPrefixLength: 64) == IPAddress("2001:db8:1:2::"))
        #expect(try #require(IPAddress("2001:db8:1:2:3:4:5:6")).masked(toPrefixLength: 0) == IPAddress("::"))
        #expect(try #require(IPAddress("2001:db8::6")).masked(toPrefixLength: 128) == IPAddress("2001:db8::6"))
    }
}
