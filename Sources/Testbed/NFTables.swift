import Foundation
import RouteSetup

/// The in-kernel reference: loads an nftables ruleset with the `nft` command (Debian's nftables) in the calling
/// thread's namespace. Only the benchmark uses it, to compare vipfarm with what the kernel does alone.
public enum NFTables {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func apply(_ ruleset: String) throws {
        guard NFTProgram.path != nil else { throw Failure(description: "nft not found: install nftables (make setup does)") }
        if let said = try NFTProgram.run(["-f", "-"], input: ruleset) {
            throw Failure(description: "nft refused the ruleset: \(said)")
        }
    }
}
