import Foundation

/// What `setup` changed and the values it overwrote, saved so that `teardown` restores them exactly, also after
/// lbnode restarts. One JSON file per TAP device under the state directory (`/run/vipfarm` by default: it is gone
/// after a reboot, as are the changes it records).
public struct SetupState: Codable, Equatable, Sendable {
    public var setup: ServerSetup
    /// Whether setup created the TAP device (then teardown removes it).
    public var createdTap: Bool
    /// Each sysctl setup changed, with its value before the first setup.
    public var originalSysctls: [Sysctl: String]
    /// The TAP's settings before setup changed them, when the TAP existed already.
    public var originalTapSettings: LinkSettings?

    public init(
        setup: ServerSetup, createdTap: Bool = false, originalSysctls: [Sysctl: String] = [:],
        originalTapSettings: LinkSettings? = nil
    ) {
        self.setup = setup
        self.createdTap = createdTap
        self.originalSysctls = originalSysctls
        self.originalTapSettings = originalTapSettings
    }

    /// The state after applying `plan` on top of this one: original values already saved are kept, so a second
    /// setup never records its own values as the originals.
    public func recording(_ plan: Plan) -> SetupState {
        var next = self
        for step in plan.steps {
            switch step {
            case .createTap(let name) where name == setup.tapName:
                next.createdTap = true
            case .changeLink(let name, _, let from) where name == setup.tapName && !next.createdTap:
                next.originalTapSettings = next.originalTapSettings ?? from
            case .setSysctl(let sysctl, _, let from):
                next.originalSysctls[sysctl] = next.originalSysctls[sysctl] ?? from
            default:
                break
            }
        }
        return next
    }

    /// The file of the TAP `tapName` in `directory`.
    public static func path(directory: String, tapName: String) -> String { "\(directory)/\(tapName).json" }

    /// The saved state, or `nil` when there is none.
    public static func load(directory: String, tapName: String) throws(SetupError) -> SetupState? {
        let path = path(directory: directory, tapName: tapName)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(SetupState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .stateFile("cannot read the saved setup state \(path): \(error); move it away to start over")
        }
    }

    /// Writes the state atomically (write a temporary file, then rename).
    public func save(directory: String) throws(SetupError) {
        let path = Self.path(directory: directory, tapName: setup.tapName)
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .stateFile("cannot save the setup state to \(path): \(error)")
        }
    }

    /// Deletes the saved state of `tapName` (nothing when there is none).
    public static func remove(directory: String, tapName: String) throws(SetupError) {
        let path = path(directory: directory, tapName: tapName)
        guard FileManager.default.fileExists(atPath: path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw .stateFile("cannot remove the setup state \(path): \(error)")
        }
    }
}
