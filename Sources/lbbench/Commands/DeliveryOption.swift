import ArgumentParser

/// The `--delivery` values of the testbed commands: lbnode's delivery modes.
enum DeliveryOption {
    static let names = ["directed", "flood", "relay", "auto"]
    static let help = "directed, flood, relay, or auto (each lbnode probes the network at start and picks one)."

    static func validate(_ delivery: String, option: String = "--delivery") throws {
        guard names.contains(delivery) else {
            throw ValidationError("\(option) must be directed, flood, relay or auto, not '\(delivery)'")
        }
    }
}
