/// A configuration the daemon refuses: the file, the line, the key and what is wrong.
struct ConfigError: Error, CustomStringConvertible, Equatable {
    let file: String
    /// 1-based; 0 when the problem is not at one place (a missing key is reported at its parent).
    let line: Int
    /// The key, dotted (`farm.vip`, `peers[1].address`).
    let key: String
    let message: String

    var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}
