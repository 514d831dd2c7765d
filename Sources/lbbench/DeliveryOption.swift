import ArgumentParser

/// The `--delivery` values of the testbed commands: lbnode's delivery modes.
enum DeliveryOption {
    static let names = ["directed", "flood", "relay"]
    static let help = "directed, flood or relay."

    static func validate(_ delivery: String, option: String = "--delivery") throws {
        guard names.contains(delivery) else {
            throw ValidationError("\(option) must be directed, flood or relay, not '\(delivery)'")
        }
    }
}
