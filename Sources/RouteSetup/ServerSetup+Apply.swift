extension ServerSetup {
    /// Plans and applies the setup in the calling thread's namespace, saving the overwritten values first.
    ///
    /// - Parameters:
    ///   - stateDirectory: where the state file lives (`/run/vipfarm`).
    ///   - dryRun: only plan.
    ///   - progress: called after each applied step.
    /// - Returns: the plan (empty when the kernel was already set up).
    /// - Throws: `SetupError`; after a failure the kernel and the state file are as they were.
    @discardableResult
    public func applySetup(stateDirectory: String, dryRun: Bool = false, progress: (PlanStep) -> Void = { _ in })
        throws(SetupError) -> Plan
    {
        try applySetupUndoably(stateDirectory: stateDirectory, dryRun: dryRun, progress: progress).plan
    }

    /// What one `applySetupUndoably` changed, and how to put it back.
    public struct AppliedSetup: Sendable {
        public let setup: ServerSetup
        /// The steps applied (empty when the kernel was already set up: then `undo` changes nothing).
        public let plan: Plan
        let stateDirectory: String
        /// The state file as it was before (nil: there was none).
        let previous: SetupState?

        /// Undoes the plan (its inverse, in reverse order) and puts the state file back as it was: for a start that
        /// fails after the setup, which must leave the host as it found it.
        public func undo() throws(SetupError) {
            guard !plan.isEmpty else { return }
            let socket: NetlinkSocket
            do { socket = try NetlinkSocket() } catch { throw .kernel(error) }
            do { try plan.inverse.apply(using: socket) } catch { throw .planFailed(error) }
            if let previous {
                try previous.save(directory: stateDirectory)
            } else {
                try SetupState.remove(directory: stateDirectory, tapName: setup.tapName)
            }
        }
    }

    /// `applySetup`, returning what it applied so that a start that fails later can undo exactly that.
    public func applySetupUndoably(
        stateDirectory: String, dryRun: Bool = false, progress: (PlanStep) -> Void = { _ in }
    ) throws(SetupError) -> AppliedSetup {
        let socket = try openSocket()
        let plan = try planSetup(using: socket)
        guard !dryRun, !plan.isEmpty else {
            return AppliedSetup(setup: self, plan: dryRun ? plan : Plan([]), stateDirectory: stateDirectory, previous: nil)
        }
        let previous = try SetupState.load(directory: stateDirectory, tapName: tapName)
        // The originals are on disk before anything changes, so a crash mid-way still lets teardown restore them.
        var next = (previous ?? SetupState(setup: self)).recording(plan)
        next.setup = self
        try next.save(directory: stateDirectory)
        do {
            try plan.apply(using: socket, progress: progress)
        } catch {
            if let previous {
                try? previous.save(directory: stateDirectory)
            } else {
                try? SetupState.remove(directory: stateDirectory, tapName: tapName)
            }
            throw .planFailed(error)
        }
        return AppliedSetup(setup: self, plan: plan, stateDirectory: stateDirectory, previous: previous)
    }

    /// Plans and applies the teardown in the calling thread's namespace, then forgets the saved state.
    ///
    /// - Returns: the plan, and warnings about what could not be restored.
    @discardableResult
    public func applyTeardown(stateDirectory: String, dryRun: Bool = false, progress: (PlanStep) -> Void = { _ in })
        throws(SetupError) -> (plan: Plan, warnings: [String])
    {
        let socket = try openSocket()
        let state = try SetupState.load(directory: stateDirectory, tapName: tapName)
        let (plan, warnings) = try planTeardown(using: socket, state: state)
        guard !dryRun else { return (plan, warnings) }
        do { try plan.apply(using: socket, progress: progress) } catch { throw .planFailed(error) }
        try SetupState.remove(directory: stateDirectory, tapName: tapName)
        return (plan, warnings)
    }

    private func openSocket() throws(SetupError) -> NetlinkSocket {
        do { return try NetlinkSocket() } catch { throw .kernel(error) }
    }
}
