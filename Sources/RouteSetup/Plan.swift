/// An ordered list of kernel changes that is applied all or nothing.
public struct Plan: Codable, Equatable, Sendable {
    public var steps: [PlanStep]

    public init(_ steps: [PlanStep]) {
        self.steps = steps
    }

    /// Whether the kernel already is as wanted.
    public var isEmpty: Bool { steps.isEmpty }

    /// The plan that undoes this one: the inverses, in reverse order.
    public var inverse: Plan { Plan(steps.reversed().map(\.inverse)) }

    /// A failed plan: the step that failed, and what happened to the steps before it.
    public struct Failure: Error, CustomStringConvertible {
        public let step: PlanStep
        public let error: NetlinkError
        /// Steps that were applied and then undone.
        public let rolledBack: [PlanStep]
        /// Inverse steps that failed too: these changes are still in the kernel.
        public let rollbackErrors: [NetlinkError]

        public var description: String {
            var text = "\(error)"
            if rollbackErrors.isEmpty {
                text +=
                    rolledBack.isEmpty ? "; nothing was changed" : "; the \(rolledBack.count) earlier steps were undone"
            } else {
                text +=
                    "; undoing the earlier steps failed too: "
                    + rollbackErrors.map(\.description).joined(separator: "; ")
            }
            return text
        }
    }

    /// Applies every step in order, calling `progress` after each. If a step fails, the steps already applied are
    /// undone in reverse order and `Failure` is thrown, so a failed plan leaves nothing half-configured.
    public func apply(using socket: NetlinkSocket, progress: (PlanStep) -> Void = { _ in }) throws(Failure) {
        var applied: [PlanStep] = []
        for step in steps {
            do {
                try step.apply(using: socket)
                applied.append(step)
                progress(step)
            } catch {
                var rollbackErrors: [NetlinkError] = []
                for done in applied.reversed() {
                    do { try done.inverse.apply(using: socket) } catch { rollbackErrors.append(error) }
                }
                throw Failure(step: step, error: error, rolledBack: applied.reversed(), rollbackErrors: rollbackErrors)
            }
        }
    }
}
