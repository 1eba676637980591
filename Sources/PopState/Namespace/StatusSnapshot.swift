/// Everything `pop status` shows, read in three round trips.
public struct StatusSnapshot: Hashable, Sendable {
    /// One placement of a service, with what its machine's agent reports.
    public struct PlacementStatus: Hashable, Sendable {
        /// The machine.
        public var machine: MachineID
        /// The placement.
        public var placement: Placement
        /// What the agent publishes, or `nil` when no agent runs the instance.
        public var instance: InstanceRecord?
    }

    /// One service.
    public struct ServiceStatus: Hashable, Sendable {
        /// The desired configuration.
        public var spec: ServiceSpec
        /// The configuration version.
        public var version: Int32
        /// The desired configuration's signature.
        public var signature: ConfigSignature
        /// The placements, by machine id.
        public var placements: [PlacementStatus]
        /// How many instances, and where, when the service is deployed by count; `nil` when it is pinned.
        public var scheduling: SchedulingPolicy? = nil
        /// The service's canary rollout (`pop config --canary`), when one was started.
        public var rollout: RolloutStatus? = nil
    }

    /// A canary rollout's state and the policy it follows.
    public struct RolloutStatus: Hashable, Sendable {
        /// Where the rollout is.
        public var state: RolloutState
        /// Its policy, when its node could be read.
        public var policy: Rollout?
    }

    /// A machine's facts with the version of their node (for compare-and-set).
    public struct FactsStatus: Hashable, Sendable {
        /// The facts.
        public var facts: MachineFacts
        /// The node's version.
        public var version: Int32
    }

    /// The store the snapshot was read from.
    public var store: String
    /// The registered machines (running agents), by id.
    public var machines: [MachineRecord]
    /// The services, by name.
    public var services: [ServiceStatus]
    /// Every machine's facts (labels, drained, absent since), registered or not.
    public var facts: [MachineID: FactsStatus] = [:]
    /// Records that could not be read (each error names its path), with the service they belong to, if any. The
    /// rest of the snapshot is complete: one damaged record never hides the others.
    public var problems: [Problem] = []

    /// A record `status()` could not read.
    public struct Problem: Hashable, Sendable {
        /// The service the record belongs to (`nil` for a machine record).
        public var service: String?
        /// What is wrong, with the node's path.
        public var error: PopError
    }
}
