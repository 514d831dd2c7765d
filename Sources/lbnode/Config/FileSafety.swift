import Foundation

/// Files lbnode trusts: its configuration, the farm key and a checker's program. Whoever can write one controls the
/// node (its peers, its key, what runs as root), so one that another user can write is refused, with the fix.
enum FileSafety {
    /// Why `path` must not be trusted, or nil (also when it does not exist: that is said elsewhere).
    static func problem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        if info.st_mode & 0o022 != 0 {
            return "\(path) can be written by other users (mode \(String(info.st_mode & 0o777, radix: 8))): "
                + "run `chmod go-w \(path)`"
        }
        if info.st_uid != 0 && info.st_uid != geteuid() {
            return "\(path) belongs to user \(info.st_uid), not to root or this user: `chown root \(path)`"
        }
        return nil
    }
}
