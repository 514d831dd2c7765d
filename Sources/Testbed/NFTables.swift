import Foundation

/// The in-kernel reference: loads an nftables ruleset with the `nft` command (Debian's nftables) in the calling
/// thread's namespace. Only the benchmark uses it, to compare vipfarm with what the kernel does alone.
public enum NFTables {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func apply(_ ruleset: String) throws {
        let candidates = ["/usr/sbin/nft", "/sbin/nft"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(description: "nft not found: install nftables (make setup does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-f", "-"]
        let input = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(ruleset.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw Failure(description: "nft refused the ruleset: \(message)")
        }
    }
}
