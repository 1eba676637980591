import Foundation

/// A desired placement of a service on a machine (persistent; written by `pop deploy`).
public struct Placement: Hashable, Sendable, Codable {
    /// When the service was deployed on the machine.
    public var deployed: Date
    /// Bumped by `pop restart`; an agent restarts its instance when this grows.
    public var restartGeneration: Int
    /// Whether the scheduler made the placement for a service deployed by count (`nil`: pinned by `pop deploy NAME
    /// MACHINE`, never moved). Left out of the record when `nil`, so pinned placements read as before.
    public var scheduled: Bool?
    /// The machine this instance replaces, when the scheduler moved it here (a lost or drained machine).
    public var rescheduledFrom: MachineID?

    /// Creates a placement.
    public init(deployed: Date, restartGeneration: Int = 0, scheduled: Bool? = nil, rescheduledFrom: MachineID? = nil) {
        self.deployed = deployed
        self.restartGeneration = restartGeneration
        self.scheduled = scheduled
        self.rescheduledFrom = rescheduledFrom
    }

    /// Whether the scheduler owns the placement (it may move it); a pinned one is never moved.
    public var isScheduled: Bool { scheduled == true }
}
