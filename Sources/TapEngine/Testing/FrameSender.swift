import CKernel
import Glibc

/// Sends raw Ethernet frames on an interface through an AF_PACKET socket: the testbed's traffic generator and
/// garbage maker. It belongs to the namespace of the thread that creates it.
public final class FrameSender {
    /// The bound packet socket (FrameBlaster sends batches on it).
    let fd: Int32

    /// - Throws: `SystemCallError`. The corresponding C functions are `socket(AF_PACKET, SOCK_RAW)` and `bind`.
    public init(interface: String) throws(SystemCallError) {
        fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", "open a packet socket on \(interface)") }
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_ifindex = Int32(if_nametoindex(interface))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
            }
        }
        guard address.sll_ifindex != 0, result == 0 else {
            let error = SystemCallError("bind", "bind a packet socket to \(interface)")
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
    }

    /// Sends one frame as it is. The corresponding C function is `send`.
    public func send(_ frame: [UInt8]) throws(SystemCallError) {
        guard Glibc.send(fd, frame, frame.count, 0) == frame.count else {
            throw SystemCallError("send", "send a \(frame.count)-byte frame")
        }
    }
}
