import ArgumentParser
import Hashing

/// `--vip` and `--interface`: measure a real farm from this host instead of building a testbed.
struct RealFarmOptions: ParsableArguments {
    @Option(help: "A real farm's VIP: measure it from this host instead of a testbed (share/doc/vipfarm/benchmarks.md).")
    var vip: String?

    @Option(help: "With --vip: the interface to send on.")
    var interface: String?

    /// The VIP, when one was given (validated).
    var address: IPAddress? { vip.flatMap { IPAddress($0) } }

    func validate() throws {
        if let vip, IPAddress(vip) == nil { throw ValidationError("--vip '\(vip)' is not an IPv4 or IPv6 address") }
        if vip == nil && interface != nil { throw ValidationError("--interface goes with --vip (a real farm)") }
    }
}
