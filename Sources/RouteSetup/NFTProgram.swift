import Foundation

/// The `nft` program (Debian package nftables), for what netlink through libnl does not cover: relay delivery's
/// ingress drop, and the testbed's filters.
public enum NFTProgram {
    /// Where `nft` is installed, or nil.
    public static var path: String? {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `nft` with `arguments` (and `input` on its standard input) in the calling thread's network namespace: nil
    /// when it succeeded, else what it said.
    ///
    /// - Throws: `NetlinkError` when `nft` is missing or cannot be started.
    public static func run(_ arguments: [String], input: String? = nil) throws(NetlinkError) -> String? {
        guard let path else {
            throw NetlinkError(operation: "run nft: not installed (apt-get install nftables)", errno: ENOENT)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let errors = Pipe()
        let stdin = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = stdin
        do {
            try process.run()
        } catch {
            throw NetlinkError(operation: "run \(path): \(error)", errno: ENOEXEC)
        }
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
        let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 ? nil : said.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
