import PopState

/// What the agent knows, guarded by the agent's lock: desired state read from the store, what the supervisor
/// reports, and what is still to be done.
struct AgentState: Sendable {
    /// An update of one instance record that is still to be written.
    enum RecordUpdate: Hashable, Sendable {
        /// Create or set the record.
        case publish(InstanceRecord)
        /// Delete the record.
        case delete
    }

    /// Where a task request stands on this machine.
    enum TaskProgress: Hashable, Sendable {
        /// Waiting for its turn (maxParallel) or for the instance to finish installing.
        case waiting
        /// Running here now.
        case running
        /// Finished, answered, or not for this machine: never looked at again.
        case done
    }

    /// A task request of a service.
    struct TaskKey: Hashable, Sendable {
        var service: ServiceName
        var id: TaskID
    }

    // MARK: Desired state

    /// What the store places here, by service (readable specs only).
    var desired: [ServiceName: DesiredInstance] = [:]
    /// The readable specs of the services read so far.
    var specs: [ServiceName: ServiceSpec] = [:]
    /// One copy of each template the specs use (see ``Agent/apply(_:of:to:)``); pruned on a full pass.
    var templates: Set<ResolvedTemplate> = []
    /// The signatures of those specs (the SHA-1 of each spec node's data).
    var signatures: [ServiceName: ConfigSignature] = [:]
    /// The packages recorded with each service.
    var packages: [ServiceName: [String]] = [:]
    /// Services placed here whose spec cannot be used, with the reason; their instances are left alone.
    var problems: [ServiceName: String] = [:]
    /// Every service seen in the store.
    var known: Set<ServiceName> = []

    // MARK: Actual state

    /// The latest status of every supervised instance.
    var statuses: [ServiceName: InstanceStatus] = [:]
    /// The restart generation each instance was started at.
    var generations: [ServiceName: Int] = [:]
    /// Services whose configuration restart waits for its turn in a rollout (see ``Rollout``).
    var rolloutWaits: Set<ServiceName> = []
    /// Services with a slow operation in flight (stop, remove, restart); the planner leaves them alone meanwhile.
    var busy: Set<ServiceName> = []

    // MARK: Work to do

    /// Store changes not yet reconciled.
    var pending = PendingChanges(everything: true)
    /// Instance records still to be written.
    var dirtyRecords: [ServiceName: RecordUpdate] = [:]
    /// Instance nodes this session has created (so a set suffices).
    var publishedNodes: Set<ServiceName> = []
    /// The services this session's watches follow (see ``Agent/track(_:session:)``).
    var watchedServices: Set<ServiceName> = []
    /// Task requests seen, by service and id.
    var tasks: [TaskKey: TaskProgress] = [:]
    /// Task results that could not be written yet (the store was unreachable).
    var unwrittenResults: [TaskKey: TaskResult] = [:]

    /// The current session, while there is one.
    var session: AgentSession?

    // MARK: Records

    /// The record to publish for `service`: the supervisor's status with any problem of its spec, or a FATAL record
    /// naming the problem when nothing runs.
    func record(for service: ServiceName, machine: MachineID) -> RecordUpdate? {
        let problem = problems[service]
        if let status = statuses[service] {
            var record = status.record(machine: machine)
            if let problem { record.lastError = problem }
            return .publish(record)
        }
        if let problem, desired[service] == nil {
            return .publish(
                InstanceRecord(
                    machine: machine, pid: nil, signature: signatures[service] ?? ConfigSignature(hex: ""),
                    state: .fatal, since: .now, lastError: problem))
        }
        return nil
    }

    /// Marks the record of `service` for publishing (or deletion when there is nothing to say).
    mutating func refreshRecord(_ service: ServiceName, machine: MachineID) {
        dirtyRecords[service] = record(for: service, machine: machine) ?? .delete
    }

    /// What the planner compares with the desired state.
    var actual: [ServiceName: ActualInstance] {
        var result: [ServiceName: ActualInstance] = [:]
        for (name, status) in statuses {
            result[name] = ActualInstance(
                service: name, signature: status.signature, restartGeneration: generations[name] ?? 0,
                isStopped: status.state == .stopped)
        }
        return result
    }
}
