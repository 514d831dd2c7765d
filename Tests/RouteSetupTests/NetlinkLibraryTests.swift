import Testing

@testable import RouteSetup

struct NetlinkLibraryTests {
    @Test func reportsTheLinkedLibnl() {
        let parts = NetlinkLibrary.version.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.first == "3")
        #expect(parts.allSatisfy { Int($0) != nil })
    }
}
