import Foundation

/// The capabilities of this process that setup needs, read before anything is tried, so a missing one gives one
/// clear line instead of a half-made plan.
public enum Privileges {
    /// Whether the effective capability set holds CAP_NET_ADMIN (bit 12 of `CapEff` in `/proc/self/status`).
    public static var hasNetAdmin: Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << 12) != 0
    }
}
