import RouteSetup
import TapEngine

/// Whether the engine can deliver: its interface and TAP are the ones it opened and are up, its thread goes round,
/// and the setup (TAP, VIP, sysctls) is still in place. The devices are looked at once per heartbeat interval (two
/// system calls each; the loop turns at every peer's heartbeat, far more often), the setup once a second (a
/// `BackgroundCheck`, on its own thread).
struct DataPathMonitor {
    /// What is wrong, and whether re-applying the setup and re-opening the engine can mend it.
    struct Fault: Equatable {
        var reason: String
        var rebuild: Bool
    }

    let interface: String
    let tap: String
    private let setupCheck: BackgroundCheck<String?>
    private let devices: InterfaceState.Reader
    /// The devices the running engine opened (nil: no engine).
    private var opened: (interface: Int32, tap: Int32)?
    private var nextSetupCheck = 0
    private let devicesInterval: Int
    private var nextDevicesCheck = 0
    private var devicesFault: Fault?
    /// An engine thread that has not gone round its loop for this long is stuck.
    static let stuckMilliseconds = 2000
    static let setupCheckMilliseconds = 1000

    /// Looks at the devices every `intervalMilliseconds` (the heartbeat interval).
    init(interface: String, tap: String, setup: ServerSetup, intervalMilliseconds: Int) throws(SystemCallError) {
        devices = try InterfaceState.Reader()
        self.interface = interface
        self.tap = tap
        devicesInterval = intervalMilliseconds
        // Relay's check runs the `nft` program: tens of milliseconds on a loaded machine, off the loop.
        setupCheck = BackgroundCheck(label: "setup-check") { Self.drift(of: setup) }
    }

    /// What changed in the setup, or nil.
    private static func drift(of setup: ServerSetup) -> String? {
        do {
            let plan = try setup.planSetup(using: try NetlinkSocket())
            return plan.isEmpty ? nil : "the setup changed (\(plan.steps.map { "\($0)" }.joined(separator: "; ")))"
        } catch {
            return "the setup cannot be checked: \(error)"
        }
    }

    /// A new engine opened the devices as they are now.
    mutating func engineOpened() {
        opened = (devices.state(of: interface)?.index ?? -1, devices.state(of: tap)?.index ?? -1)
        setupCheck.reset()
        nextDevicesCheck = 0
    }

    mutating func engineClosed() { opened = nil }

    /// What keeps the engine from delivering at `now` (ms), or nil.
    mutating func fault(now: Int, engine: Engine?) -> Fault? {
        guard let engine, let opened else { return Fault(reason: "the engine is not running", rebuild: true) }
        if now >= nextDevicesCheck {
            nextDevicesCheck = now + devicesInterval
            devicesFault = lookAtDevices(opened: opened)
        }
        if let devicesFault { return devicesFault }
        let silent = engine.millisecondsSinceLastLoop
        if silent > Self.stuckMilliseconds {
            return Fault(reason: "the engine thread is stuck (\(silent) ms without a turn)", rebuild: false)
        }
        if now >= nextSetupCheck {
            nextSetupCheck = now + Self.setupCheckMilliseconds
            setupCheck.start(now: now)
        }
        return setupCheck.latest?.value.map { Fault(reason: $0, rebuild: true) }
    }

    /// What is wrong with the interface or the TAP the engine opened, or nil.
    private func lookAtDevices(opened: (interface: Int32, tap: Int32)) -> Fault? {
        guard let nic = devices.state(of: interface) else {
            return Fault(reason: "interface \(interface) is gone", rebuild: true)
        }
        if nic.index != opened.interface {
            return Fault(reason: "interface \(interface) was re-created", rebuild: true)
        }
        if !nic.up { return Fault(reason: "interface \(interface) is down", rebuild: false) }
        if !nic.running { return Fault(reason: "interface \(interface) has no carrier", rebuild: false) }
        guard let tapState = devices.state(of: tap) else { return Fault(reason: "\(tap) is gone", rebuild: true) }
        if tapState.index != opened.tap { return Fault(reason: "\(tap) was re-created", rebuild: true) }
        if !tapState.up { return Fault(reason: "\(tap) is down", rebuild: true) }
        return nil
    }
}
