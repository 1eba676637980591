import PopState

/// Decides when this machine may start a task request: the `maxParallel` rule for rolling upgrades.
///
/// Machines take their turn in the request's order. A machine starts only when fewer than `maxParallel` of the
/// machines listed before it are unfinished (no result yet, or a `running` one). With `maxParallel` 1 the machines run
/// one after another; without a limit every machine starts at once.
public struct TaskGate: Hashable, Sendable {
    /// What the gate says about this machine.
    public enum Decision: Hashable, Sendable {
        /// Start the task now.
        case start
        /// Wait: this many machines before this one are unfinished.
        case wait(unfinishedBefore: Int)
        /// The request does not name this machine.
        case notAsked
    }

    /// The machines in the request's order.
    public var machines: [MachineID]
    /// The limit, or `nil` for none.
    public var maxParallel: Int?

    /// Creates a gate for a request.
    public init(machines: [MachineID], maxParallel: Int?) {
        self.machines = machines
        self.maxParallel = maxParallel
    }

    /// Creates the gate of a stored request.
    public init(_ request: TaskRequest) {
        self.init(machines: request.machines, maxParallel: request.maxParallel)
    }

    /// Whether `machine` may start, given the results written so far (by machine).
    public func decision(for machine: MachineID, results: [MachineID: TaskResult.State]) -> Decision {
        guard let position = machines.firstIndex(of: machine) else { return .notAsked }
        guard let maxParallel else { return .start }
        let limit = max(1, maxParallel)
        let unfinished = machines[..<position].reduce(into: 0) { count, earlier in
            switch results[earlier] {
            case nil, .running?: count += 1
            case .succeeded?, .failed?: break
            }
        }
        return unfinished < limit ? .start : .wait(unfinishedBefore: unfinished)
    }
}
