import ArgumentParser
import Foundation
import TapEngine

/// `lbnode keygen FILE`: a new farm key.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new random farm key (32 bytes, as one hex line) to a file only its owner can read.",
        discussion: """
            The file is created with mode 0600 and never overwritten. Copy it to every node of the farm (the same \
            key everywhere) and name it in the configuration's farm.key_file. To rotate keys, see \
            the operator's guide, share/doc/vipfarm/operations.md (two lines: the first signs, both are accepted).
            """
    )

    @Argument(help: ArgumentHelp("The key file to create, e.g. /etc/vipfarm/web.key.", valueName: "file"))
    var file: String

    func run() throws {
        var key = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()  // getrandom(2)
        for index in key.indices { key[index] = generator.next() }
        let line = key.map { String(format: "%02x", $0) }.joined() + "\n"
        // O_EXCL: an existing key (perhaps the farm's only copy) is never replaced; mode 0600 from the start.
        let fd: Int32
        do {
            fd = try SystemCall.retrying("open", "create \(file)") {
                open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            }
        } catch {
            throw CommandFailure(
                error.errno == EEXIST
                    ? "\(file) exists: a key is never overwritten (remove it first if you mean to replace it)"
                    : "\(error)")
        }
        defer { close(fd) }
        do {
            let written = try SystemCall.retrying("write", "write \(file)") {
                line.withCString { write(fd, $0, line.utf8.count) }
            }
            guard written == line.utf8.count else { throw SystemCallError("write", "write \(file)", errno: EIO) }
            try SystemCall.retrying("fchmod", "set the mode of \(file)") { fchmod(fd, 0o600) }
            try SystemCall.retrying("fsync", "write \(file) to disk") { fsync(fd) }
        } catch {
            unlink(file)
            throw CommandFailure("\(error); nothing was left behind")
        }
        print("wrote a new farm key to \(file) (mode 0600): copy it to every node of the farm")
    }
}
