import Foundation
import PopState

/// Something that happened to the agent: a store change, a supervisor report, a session change, or the outcome of an
/// action. The driver feeds each to ``AgentStateMachine/receive(_:)`` in the order it arrived.
enum AgentEvent: Sendable {
    // MARK: Sessions

    /// A store session was opened and pop's layout checked; `isMachineLocal` is the store's.
    case sessionOpened(isMachineLocal: Bool)
    /// The session cannot be used any more (or could not be opened): expired, closed, its watches ended, its
    /// registration failed or was deleted.
    case sessionFailed(any Error)
    /// The session's connection changed.
    case sessionChanged(SessionEvent)
    /// Watches asked for with ``AgentAction/addWatches(_:purpose:)`` are set.
    case watchesAdded(WatchPurpose)
    /// The machine is registered with this record.
    case machineRegistered(MachineRecord)
    /// Another session holds this machine's registration (`nil`: it was gone when looked at).
    case registrationConflict(ours: MachineRecord, holder: RegistrationHolder?)
    /// The stale registration is deleted.
    case staleRegistrationRemoved
    /// The other session's registration is gone.
    case registrationReleased
    /// A watch delivered a change.
    case storeChanged(NodeEvent)

    // MARK: Reads

    /// The services node's children.
    case servicesListed([String])
    /// What the store says about each service read, at the time the read finished.
    case servicesRead([ServiceName: ServiceSnapshot], at: Date)
    /// The rollouts asked for.
    case rolloutsRead([ServiceName: RolloutView])
    /// The task requests asked for, at the time the read finished.
    case tasksRead([TaskKey: TaskView], at: Date)
    /// A step of the reconcile pass failed (a read, or setting watches).
    case passFailed(any Error)

    // MARK: Instances

    /// At start, an instance a previous agent left running was adopted, with the restart generation it recorded.
    case instanceAdopted(InstanceStatus, generation: Int)
    /// The supervisor was asked to start the instance at this restart generation.
    case instanceLaunched(ServiceName, generation: Int)
    /// The instance could not be started: its spec cannot be turned into a command, or its folder not written.
    case instanceLaunchFailed(ServiceName, reason: String, at: Date)
    /// The supervisor reported a change.
    case supervisorReported(InstanceEvent)
    /// An instance is stopped, forgotten and its local records deleted.
    case instanceRemoved(ServiceName)

    // MARK: Records

    /// A batch of instance records was written, up to `failure` when one failed.
    case recordsPublished([ServiceName: PublishOutcome], failure: (any Error)?)

    // MARK: Tasks

    /// A task started here; this `running` result is to be written.
    case taskStarted(TaskKey, TaskResult)
    /// A task finished here with this result.
    case taskFinished(TaskKey, TaskResult)
    /// A task finished here and installed packages; its result is written once they are recorded with the service.
    case packagesInstalled(TaskKey, PackageRecording)
    /// A task's packages are recorded; this is the service's whole list now.
    case packagesRecorded(TaskKey, [String])
    /// A task's packages could not be recorded.
    case packagesNotRecorded(TaskKey, any Error)
    /// These task results were written, up to `failure` when one failed.
    case taskResultsWritten([TaskKey: TaskResult], failure: (any Error)?)

    // MARK: Time

    /// A timer the core scheduled fired.
    case timerFired(AgentTimer)
}

/// What the store says about one service, as far as this machine is concerned.
struct ServiceSnapshot: Sendable {
    /// The spec, or why it cannot be read; `nil` when the service does not exist.
    var spec: Result<ServiceSpec, PopError>?
    /// The configuration signature: the SHA-1 of the spec node's data.
    var signature: ConfigSignature?
    /// This machine's placement, or why it cannot be read; `nil` when the service is not placed here.
    var placement: Result<Placement, PopError>?
    /// The packages recorded with the service.
    var packages: [String]
    /// The names of the service's task requests.
    var tasks: [String] = []
}

/// A service's rollout as it bears on this machine's restart.
struct RolloutView: Hashable, Sendable {
    /// The rollout setting, when the service has a readable one.
    var rollout: Rollout?
    /// The machines the service is placed on (read only when the rollout has a limit).
    var placed: [MachineID] = []
    /// The instance records of the machines before this one.
    var records: [MachineID: InstanceRecord] = [:]
    /// Which of the machines before this one are registered.
    var registered: Set<MachineID> = []
    /// The service's rollout state (read only when the rollout paces restarts).
    var state: RolloutState?
    /// When it was read.
    var now = Date(timeIntervalSince1970: 0)
}

/// A task request as read from the store.
enum TaskView: Hashable, Sendable {
    /// The request is gone.
    case missing
    /// The request cannot be decoded.
    case malformed(String)
    /// The request, with the state of every result that bears on this machine: its own, and those of the machines
    /// before it in the request's order.
    case request(TaskRequest, results: [MachineID: TaskResult.State])
}

/// Who holds this machine's registration when registering conflicts.
struct RegistrationHolder: Hashable, Sendable {
    /// The holder's record, when it can be read.
    var record: MachineRecord?
    /// The node's version.
    var version: Int32
    /// Whether the record's agent pid is alive on this host.
    var alive: Bool
}

/// What happened to one record of a published batch.
enum PublishOutcome: Hashable, Sendable {
    /// The record is written, in a node this session owns.
    case written
    /// The service is no longer placed here: nothing was written.
    case notPlaced
    /// The record is deleted.
    case deleted
}
