import ArgumentParser
import RouteSetup

/// `lbnode setup`: prepares a server for the farm.
struct SetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Prepare this server: the TAP device with the VIP and virtual MAC, and the ARP sysctls.",
        discussion: """
            Creates the TAP device (persistent, so `lbnode run` attaches later) with the farm's virtual MAC, \
            brings it up with ARP off, sets arp_ignore=1 and arp_announce=2 on the interface so the kernel never \
            answers ARP for the VIP itself, relaxes reverse-path filtering on the TAP, and puts the VIP on the TAP. \
            Each step is printed. Running it again changes nothing. The values it overwrote are saved under \
            --state-dir so that `lbnode teardown` restores them exactly. If a step fails, the steps before it are \
            undone.
            """
    )

    @OptionGroup var options: SetupOptions

    func run() throws {
        let setup = options.serverSetup
        try options.requirePrivileges(for: "setup")
        let plan: Plan
        do {
            plan = try setup.applySetup(stateDirectory: options.stateDir, dryRun: options.dryRun) { step in
                print("  done: \(step)")
            }
        } catch {
            throw CommandFailure("setup failed: \(error)")
        }
        if plan.isEmpty {
            print("nothing to change: \(setup.tapName) holds \(setup.vip.address) with MAC \(setup.virtualMAC)")
        } else if options.dryRun {
            print("would do (--dry-run, nothing changed):")
            for step in plan.steps { print("  \(step)") }
        } else {
            print(
                "ready: \(setup.tapName) holds \(setup.vip.address) with MAC \(setup.virtualMAC); "
                    + "\(setup.interface) does not answer ARP for it")
        }
    }
}
