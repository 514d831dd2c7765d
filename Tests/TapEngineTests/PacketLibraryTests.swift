import Testing

@testable import TapEngine

struct PacketLibraryTests {
    @Test func reportsTheLinkedLibpcap() {
        // The real library answers: Debian's libpcap says "libpcap version 1.10.3 (with TPACKET_V3)".
        #expect(PacketLibrary.version.hasPrefix("libpcap version "))
    }
}
