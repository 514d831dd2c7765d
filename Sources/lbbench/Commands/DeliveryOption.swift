import ArgumentParser
import TapEngine

/// `--delivery` of the testbed commands: lbnode's `delivery:` settings, refused with the list when misspelt.
extension DeliverySetting: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }

    public static var allValueStrings: [String] { all.map(\.description) }

    static let help =
        "How client frames reach the servers; auto: each lbnode probes the network at start and picks one."
}
