import Foundation
import RouteSetup
import Testing

@testable import lbnode

/// The heartbeat loop reads the farm interface's drops from `/proc/net/dev`, which waits for no lock.
struct ReceiveDropCounterTests {
    static let sample = Array(
        """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0
          eth0: 9876543   65432    1   17    3     2          0         0  1234567    4321    0    5    0     0       0          0
        eth0.5:     100       1    0   99    0     0          0         0      100       1    0    0    0     0       0          0

        """.utf8)[...]

    @Test func theDropAndFifoColumnsOfTheInterfaceAreItsDrops() {
        #expect(ReceiveDropCounter.interfaceDrops(of: "eth0", in: Self.sample) == 20)
        #expect(ReceiveDropCounter.interfaceDrops(of: "eth0.5", in: Self.sample) == 99)
        #expect(ReceiveDropCounter.interfaceDrops(of: "lo", in: Self.sample) == 0)
        #expect(ReceiveDropCounter.interfaceDrops(of: "eth", in: Self.sample) == nil)
    }

    /// The file as this kernel writes it, against what netlink says of the same interface.
    @Test func theKernelsFileAgreesWithNetlink() throws {
        let text = try #require(ReceiveDropCounter.ProcFile.devices?.read())
        let link = try #require(try NetlinkSocket().link(named: "lo"))
        #expect(ReceiveDropCounter.interfaceDrops(of: "lo", in: text) == link.receiveDrops)
        var counter = ReceiveDropCounter(interface: "lo", intervalMilliseconds: 10)
        #expect(counter.read(now: 0)?.interface == link.receiveDrops)
        #expect(counter.read(now: 5) == nil, "once per interval")
    }
}
