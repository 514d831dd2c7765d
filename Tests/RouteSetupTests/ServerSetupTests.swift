import Foundation
import Testing

@testable import RouteSetup

/// End-to-end tests of `lbnode setup` / `teardown` on real kernels in fresh namespaces.
@Suite(privileged)
struct ServerSetupTests {
    static let vmac = HardwareAddress("02:76:c6:12:00:64")!
    static let setup = ServerSetup(
        interface: ScratchNamespace.interface, vip: IPPrefix("198.18.0.100")!,
        virtualMAC: vmac)

    @Test func setupCreatesTheTapWithTheVipAndSuppressesArp() throws {
        try ScratchNamespace.with { scratch in
            let plan = try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetup(stateDirectory: scratch.stateDirectory)
            }
            #expect(plan.steps.first == .createTap(name: "lb0"))
            try scratch.run { (socket) throws(NetlinkError) in
                let tap = try socket.requireLink(named: "lb0")
                #expect(tap.kind == "tun")
                #expect(tap.mac == Self.vmac)
                #expect(tap.isUp)
                #expect(tap.isNoARP)
                #expect(try socket.addresses(onLink: tap.index).contains(IPPrefix("198.18.0.100/32")!))
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "1")
                #expect(try Sysctl.ipv4("eth0", "arp_announce").read() == "2")
                #expect(try Sysctl.ipv4("lb0", "rp_filter").read() == "2")
                // The interface keeps its own address; the VIP is only on the TAP.
                let eth0 = try socket.requireLink(named: "eth0")
                #expect(try socket.addresses(onLink: eth0.index).filter(\.isIPv4) == [ScratchNamespace.address])
            }
        }
    }

    @Test func setupTwiceChangesNothingTheSecondTime() throws {
        try ScratchNamespace.with { scratch in
            let first = try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetup(stateDirectory: scratch.stateDirectory)
            }
            let second = try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetup(stateDirectory: scratch.stateDirectory)
            }
            #expect(!first.isEmpty)
            #expect(second.isEmpty)
        }
    }

    /// A start that fails after the setup undoes exactly what it applied: the TAP, the VIP, the sysctls and the
    /// record of the originals are as before.
    @Test func anAppliedSetupIsUndoneExactly() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (_) throws(NetlinkError) in try Sysctl.ipv4("eth0", "arp_ignore").write("2") }
            let applied = try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetupUndoably(stateDirectory: scratch.stateDirectory)
            }
            #expect(!applied.plan.isEmpty)
            try scratch.runSetup { () throws(SetupError) in try applied.undo() }
            try scratch.run { (socket) throws(NetlinkError) in
                #expect(try socket.link(named: "lb0") == nil)
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "2")
                #expect(try Sysctl.ipv4("eth0", "arp_announce").read() == "0")
            }
            #expect(try SetupState.load(directory: scratch.stateDirectory, tapName: "lb0") == nil)
        }
    }

    @Test func teardownRestoresTheSysctlsExactlyAndRemovesTheTap() throws {
        try ScratchNamespace.with { scratch in
            // Unusual originals, so that "restored" cannot mean "set to the kernel default".
            try scratch.run { (_) throws(NetlinkError) in
                try Sysctl.ipv4("eth0", "arp_ignore").write("2")
                try Sysctl.ipv4("eth0", "arp_announce").write("1")
            }
            try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetup(stateDirectory: scratch.stateDirectory)
            }
            // A second setup must not record its own values as the originals.
            try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetup(stateDirectory: scratch.stateDirectory)
            }
            let (_, warnings) = try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applyTeardown(stateDirectory: scratch.stateDirectory)
            }
            #expect(warnings.isEmpty)
            try scratch.run { (socket) throws(NetlinkError) in
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "2")
                #expect(try Sysctl.ipv4("eth0", "arp_announce").read() == "1")
                #expect(try socket.link(named: "lb0") == nil)
            }
            #expect(
                !FileManager.default.fileExists(
                    atPath: SetupState.path(directory: scratch.stateDirectory, tapName: "lb0")))
        }
    }

    @Test func dryRunPlansButChangesNothing() throws {
        try ScratchNamespace.with { scratch in
            let plan = try scratch.runSetup { () throws(SetupError) in
                try Self.setup.applySetup(stateDirectory: scratch.stateDirectory, dryRun: true)
            }
            #expect(plan.steps.count == 6)
            try scratch.run { (socket) throws(NetlinkError) in
                #expect(try socket.link(named: "lb0") == nil)
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "0")
            }
        }
    }

    @Test func refusesAVipThatIsOnAnotherInterfaceAndChangesNothing() throws {
        try ScratchNamespace.with { scratch in
            try scratch.run { (socket) throws(NetlinkError) in
                try socket.addAddress(
                    IPPrefix("198.18.0.100/32")!, toLink: try socket.requireLink(named: "peer0").index)
            }
            #expect {
                try scratch.runSetup { () throws(SetupError) in
                    try Self.setup.applySetup(stateDirectory: scratch.stateDirectory)
                }
            } throws: { error in
                guard case SetupError.vipOnAnotherInterface(_, let holder) = error else { return false }
                return holder == "peer0"
            }
            try scratch.run { (socket) throws(NetlinkError) in
                #expect(try socket.link(named: "lb0") == nil)
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "0")
            }
        }
    }

    @Test func refusesBadInput() throws {
        try ScratchNamespace.with { scratch in
            var unknown = Self.setup
            unknown.interface = "eth9"
            var ownAddress = Self.setup
            ownAddress.vip = IPPrefix("198.18.0.11")!
            var network = Self.setup
            network.vip = IPPrefix("198.18.0.0/24")!
            var badTap = Self.setup
            badTap.tapName = "a-name-longer-than-15"
            var takenTap = Self.setup
            takenTap.tapName = "peer0"
            for (setup, expected) in [
                (unknown, "does not exist"), (ownAddress, "own address"),
                (network, "not a single unicast address"), (badTap, "not a valid interface name"),
                (takenTap, "veth device"),
            ] {
                #expect {
                    try scratch.runSetup { () throws(SetupError) in
                        try setup.applySetup(stateDirectory: scratch.stateDirectory)
                    }
                } throws: { error in
                    "\(error)".contains(expected)
                }
            }
            try scratch.run { (socket) throws(NetlinkError) in
                #expect(try socket.link(named: "lb0") == nil)
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "0")
            }
        }
    }

    @Test func aStepThatFailsRollsBackTheStepsBeforeIt() throws {
        try ScratchNamespace.with { scratch in
            // Real steps that succeed, then one the kernel refuses (an address on a device that does not exist).
            let plan = Plan([
                .createTap(name: "lbroll"),
                .changeLink(name: "lbroll", to: LinkSettings(mac: Self.vmac, up: true), from: LinkSettings()),
                .setSysctl(.ipv4("eth0", "arp_ignore"), to: "1", from: "0"),
                .addAddress(link: "missing0", prefix: IPPrefix("198.18.0.100")!),
            ])
            let failure: Plan.Failure? = try scratch.run { (socket) throws(NetlinkError) in
                do throws(Plan.Failure) {
                    try plan.apply(using: socket)
                    return nil
                } catch {
                    return error
                }
            }
            let caught = try #require(failure)
            #expect(caught.step == plan.steps[3])
            #expect(caught.rolledBack.count == 3)
            #expect(caught.rollbackErrors.isEmpty)
            try scratch.run { (socket) throws(NetlinkError) in
                #expect(try socket.link(named: "lbroll") == nil)
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "0")
            }
        }
    }

    @Test func ipv6VipGoesOnTheTapWithoutArpSysctls() throws {
        try ScratchNamespace.with { scratch in
            var setup = Self.setup
            setup.vip = IPPrefix("2001:db8::100")!
            try scratch.runSetup { () throws(SetupError) in try setup.applySetup(stateDirectory: scratch.stateDirectory)
            }
            try scratch.run { (socket) throws(NetlinkError) in
                let tap = try socket.requireLink(named: "lb0")
                #expect(try socket.addresses(onLink: tap.index).contains(IPPrefix("2001:db8::100/128")!))
                #expect(try Sysctl.ipv4("eth0", "arp_ignore").read() == "0")
            }
            try scratch.runSetup { () throws(SetupError) in
                try setup.applyTeardown(stateDirectory: scratch.stateDirectory)
            }
            try scratch.run { (socket) throws(NetlinkError) in #expect(try socket.link(named: "lb0") == nil) }
        }
    }
}
