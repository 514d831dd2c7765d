import ArgumentParser
import RouteSetup

/// `lbnode teardown`: undoes `lbnode setup`.
struct TeardownCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teardown",
        abstract: "Undo setup: remove the VIP and the TAP device, restore every sysctl to its saved value.",
        discussion: """
            Uses the state that setup saved under --state-dir to restore the sysctls exactly. Without it, the VIP \
            and the TAP device are still removed, and a warning names what could not be restored.
            """
    )

    @OptionGroup var options: SetupOptions

    func run() throws {
        let setup = options.serverSetup
        try options.requirePrivileges(for: "teardown")
        let result: (plan: Plan, warnings: [String])
        do {
            result = try setup.applyTeardown(stateDirectory: options.stateDir, dryRun: options.dryRun) { step in
                print("  done: \(step)")
            }
        } catch {
            throw CommandFailure("teardown failed: \(error)")
        }
        for warning in result.warnings { printError("lbnode: warning: \(warning)") }
        if result.plan.isEmpty {
            print("nothing to undo: \(setup.tapName) and \(setup.vip.address) are not set up")
        } else if options.dryRun {
            print("would do (--dry-run, nothing changed):")
            for step in result.plan.steps { print("  \(step)") }
        } else {
            print("removed: \(setup.tapName) and \(setup.vip.address); sysctls restored")
        }
    }
}
