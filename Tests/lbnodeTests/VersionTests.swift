import Testing

@testable import lbnode

struct VersionTests {
    @Test func versionNamesTheCLibrariesItRunsWith() {
        let text = LBNode.versionText
        #expect(text.hasPrefix("lbnode "))
        #expect(text.contains("libpcap version"))
        #expect(text.contains("libnl 3."))
    }
}
