import Testing

@testable import RouteSetup

struct AddressTests {
    @Test func prefixesParseAndPrint() throws {
        #expect(IPPrefix("198.18.0.100")?.description == "198.18.0.100/32")
        #expect(IPPrefix("198.18.0.0/15")?.prefixLength == 15)
        #expect(IPPrefix("2001:db8::1")?.description == "2001:db8::1/128")
        #expect(IPPrefix("2001:db8::/64")?.isIPv4 == false)
        for bad in ["", "198.18.0.1000", "198.18.0.1/33", "198.18.0.1/", "198.18.0.1/x", "2001:db8::1/129", "eth0"] {
            #expect(IPPrefix(bad) == nil, "\(bad)")
        }
    }

    @Test func unusableVipsAreRefused() {
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "::", "::1", "ff02::1"] {
            #expect(!IPPrefix(bad)!.isUsableUnicast, "\(bad)")
        }
        #expect(IPPrefix("198.18.0.100")!.isUsableUnicast)
    }

    @Test func macAddressesParseAndPrint() {
        #expect(HardwareAddress("02:76:C6:12:00:64")?.description == "02:76:c6:12:00:64")
        #expect(HardwareAddress("02-76-c6-12-00-64")?.isLocallyAdministered == true)
        #expect(HardwareAddress("01:00:5e:00:00:01")?.isMulticast == true)
        for bad in ["", "02:76:c6:12:00", "02:76:c6:12:00:64:01", "2:76:c6:12:00:64", "zz:76:c6:12:00:64"] {
            #expect(HardwareAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func savedStateKeepsTheFirstOriginals() throws {
        let setup = ServerSetup(
            interface: "eth0", vip: IPPrefix("198.18.0.100")!,
            virtualMAC: HardwareAddress("02:00:00:00:00:01")!)
        let first = SetupState(setup: setup).recording(
            Plan([
                .createTap(name: "lb0"), .setSysctl(.ipv4("eth0", "arp_ignore"), to: "1", from: "0"),
            ]))
        let second = first.recording(Plan([.setSysctl(.ipv4("eth0", "arp_ignore"), to: "1", from: "1")]))
        #expect(second.createdTap)
        #expect(second.originalSysctls[.ipv4("eth0", "arp_ignore")] == "0")
        #expect(
            Plan([.addAddress(link: "lb0", prefix: setup.vip)]).inverse
                == Plan([.removeAddress(link: "lb0", prefix: setup.vip)]))
    }
}
