import Foundation

/// The farm key file: the secret heartbeats are signed with.
///
/// Two forms. Raw bytes (e.g. `head -c 32 /dev/urandom`): one key. Or text, one key per line in hex (at least 32 hex
/// digits each, e.g. `openssl rand -hex 32`): the first line signs, every line is accepted. Two lines make a rotation
/// without a split farm: put `old` + `new` on every node (reload), then `new` + `old` (reload), then `new` alone.
///
/// The file must belong to the user running lbnode and be unreadable by others: with the key anyone can take over
/// the farm's membership.
struct KeyFile {
    /// The keys, the signing one first.
    let keys: [Data]

    static func load(path: String) throws -> KeyFile {
        var info = stat()
        guard stat(path, &info) == 0 else {
            // Only when it does not exist: advice to create one must never overwrite the farm's key.
            throw KeyFileError(
                errno == ENOENT
                    ? "\(path) does not exist: create the farm's key once (`lbnode keygen \(path)`) and copy that "
                        + "same file to every node"
                    : "cannot read \(path): \(String(cString: strerror(errno)))\(errno == EACCES ? ": run as root" : "")")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyFileError(
                "cannot read \(path)\(access(path, R_OK) != 0 && geteuid() != 0 ? ": permission denied: run as root" : "")")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw KeyFileError(
                "\(path) is readable or writable by its group or other users (mode "
                    + "\(String(info.st_mode & 0o777, radix: 8))): run `chmod 600 \(path)`")
        }
        guard info.st_uid == geteuid() || info.st_uid == 0 else {
            throw KeyFileError("\(path) belongs to user \(info.st_uid), not to root or this user: `chown` it")
        }
        let keys = hexLines(data) ?? [data]
        guard let shortest = keys.map(\.count).min(), shortest >= 16 else {
            throw KeyFileError(
                "\(path) holds a key of \(keys.map(\.count).min() ?? 0) bytes; a farm key needs at least 16")
        }
        return KeyFile(keys: keys)
    }

    /// The keys of a text file of hex lines (at most two, 32 hex digits or more each), or nil if it is not one.
    private static func hexLines(_ data: Data) -> [Data]? {
        guard let text = String(data: data, encoding: .utf8) else { return nil }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard (1...2).contains(lines.count),
            lines.allSatisfy({ $0.count >= 32 && $0.count % 2 == 0 && $0.allSatisfy(\.isHexDigit) })
        else { return nil }
        return lines.map { line in
            var bytes = Data()
            var index = line.startIndex
            while index < line.endIndex {
                let next = line.index(index, offsetBy: 2)
                bytes.append(UInt8(line[index..<next], radix: 16)!)
                index = next
            }
            return bytes
        }
    }
}

struct KeyFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
