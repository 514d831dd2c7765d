import Hashing
import RouteSetup

/// What a farm's name and VIP determine on every node.
enum FarmIdentity {
    /// The farm's virtual MAC: `02` (locally administered, unicast), one byte of the farm seed, then the last four
    /// bytes of the VIP. Every node derives the same MAC; two farms with one VIP differ in the second byte.
    static func virtualMAC(farm: String, vip: IPPrefix) -> HardwareAddress {
        let seedByte = UInt8(truncatingIfNeeded: FarmSeed(farmName: farm).value)
        return HardwareAddress(bytes: [0x02, seedByte] + vip.bytes.suffix(4))!
    }
}
