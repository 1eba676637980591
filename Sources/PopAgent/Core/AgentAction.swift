import PopState

/// What the agent's core (``AgentStateMachine``) asks its driver to do. The driver performs each action and reports
/// its outcome back as an event; store actions act in the current session.
enum AgentAction: Hashable, Sendable {
    // MARK: Sessions

    /// Open a store session, check pop's layout in it, and follow the session's events.
    case openSession
    /// Set these watches; when the store has set them all, report ``WatchPurpose`` back.
    case addWatches(Set<WatchKey>, purpose: WatchPurpose)
    /// Stop these watches.
    case dropWatches(Set<WatchKey>)
    /// Register this machine: its ephemeral node, owned by the session.
    case registerMachine
    /// Delete the registration of this machine that a dead agent left, if it still has this version.
    case replaceStaleRegistration(version: Int32)
    /// Wait until another session's registration of this machine is gone.
    case awaitRegistrationRelease
    /// Tell whoever started the agent that it is ready (the first registration only).
    case reportReady(MachineRecord)
    /// End the current session (or the one being opened): drop its watches, stop its work, close its store handle.
    /// Every ``openSession`` is matched by one.
    case endSession
    /// Stop the agent: the first session could not be used.
    case fail(PopError)
    /// Fire the timer after the delay.
    case schedule(AgentTimer, after: Duration)

    // MARK: Reading

    /// List the services.
    case listServices
    /// Read each service's spec, this machine's placement, its packages and its task list.
    case readServices([ServiceName])
    /// Read the rollout of each service, and what its peers run when the rollout has a limit.
    case readRollouts([ServiceName])
    /// Bring back the last signature healthy everywhere: a batch of the service's canary rollout failed.
    case revertRollout(ServiceName, reason: String)
    /// Read task requests with the results that decide this machine's turn.
    case readTasks([TaskKey])

    // MARK: Instances

    /// Prepare the instance's folder and have the supervisor start (or restart) it.
    case launch(InstanceLaunch)
    /// Stop the instance, forget it and delete its local records (a slow step, beside everything else).
    case remove(ServiceName)

    // MARK: Records

    /// Write these instance records.
    case publish([ServiceName: RecordWrite])

    // MARK: Tasks

    /// Run a task request here (a slow step, beside everything else).
    case runTask(TaskLaunch)
    /// Write these task results.
    case writeTaskResults([TaskKey: TaskResult])
    /// Append a task's installed packages to its service's record.
    case recordPackages(TaskKey, PackageRecording)
    /// Mark the instance's environment complete for the recorded packages too (see ``PackageRecording``).
    case markEnvironmentComplete(PackageRecording, packages: [String])

    // MARK: Diagnostics

    /// Log a decision and why it was taken.
    case note(AgentNote)
}

/// What waits for watches to be set.
enum WatchPurpose: Hashable, Sendable {
    /// The session's base watches; the machine registers next.
    case base
    /// The watches of newly listed services; the pass reads them next.
    case services
    /// The placements of services whose restart waits for its turn; they are read again next.
    case rolloutPeers(Set<ServiceName>)
    /// The task lists of services whose requests wait for other machines' answers; those requests are looked at
    /// again next.
    case taskPeers(Set<TaskKey>)
}

/// A start or restart the planner asked for, with what the driver needs to carry it out.
struct InstanceLaunch: Hashable, Sendable {
    /// The instance to run.
    var desired: DesiredInstance
    /// Why an instance that runs is restarted; `nil` for a start.
    var restart: ReconcileAction.RestartReason?
    /// The spec to run.
    var spec: ServiceSpec
    /// The packages recorded with the service.
    var packages: [String]

    /// The plan step, for logs.
    var plan: ReconcileAction {
        restart.map { .restart(desired, because: $0) } ?? .start(desired)
    }
}

/// A task request this machine runs now, with the spec it runs in.
struct TaskLaunch: Hashable, Sendable {
    /// Which request.
    var key: TaskKey
    /// The request.
    var request: TaskRequest
    /// The service's spec and packages, when it is placed here with a usable spec (the task fails otherwise).
    var service: PlacedService?
}

/// Packages a task installed, still to be recorded with its service, and the task's final result, written once they
/// are.
struct PackageRecording: Hashable, Sendable {
    /// The installed requirements (the task's arguments).
    var packages: [String]
    /// The instance's blueprint the task ran with (its environment marker names the requirement set before).
    var blueprint: InstanceBlueprint
    /// The spec the task ran with.
    var spec: ServiceSpec
    /// The task's result, written once the packages are recorded.
    var result: TaskResult
}

/// One instance record to write.
enum RecordWrite: Hashable, Sendable {
    /// Create the record (this session has not created it yet).
    case create(InstanceRecord)
    /// Set the record this session created.
    case set(InstanceRecord)
    /// Delete the record.
    case delete
}

/// A wake-up the core asked for.
enum AgentTimer: Hashable, Sendable {
    /// Open a new store session.
    case reopenSession
    /// Resume reconcile passes after a failed one.
    case resumePasses
    /// Resume publishing after a failed batch.
    case resumePublishing
    /// Resume writing task results after a failure.
    case resumeResultWrites
    /// Resume recording packages after a failure.
    case resumeRecordings
    /// Look again at the restarts that wait for their turn in a rollout: time alone may let them go (a healthy time
    /// passed) or fail a batch (its deadline passed).
    case recheckRollouts

    /// Whether the timer belongs to the session it was scheduled in (and is dropped when that session ends).
    var isSessionScoped: Bool { self != .reopenSession }
}

/// A decision worth a log line, with its reason.
enum AgentNote: Hashable, Sendable {
    /// A service placed here cannot be used; its instance is left as it is.
    case serviceUnusable(ServiceName, String)
    /// Service nodes whose names are not service names are ignored.
    case invalidServiceNames([String])
    /// A configuration restart waits for its turn in the service's rollout.
    case rolloutTurnAwaited(ServiceName, ConfigSignature)
    /// A task request waits for its turn.
    case taskWaits(TaskKey, unfinishedBefore: Int)
    /// A task request cannot be decoded; it is ignored.
    case malformedTaskRequest(TaskKey, String)
    /// A registration of this machine left by a dead agent of this host is replaced.
    case replacingStaleRegistration(pid: Int32)
    /// Another session holds this machine's registration; the agent waits for it to end.
    case registrationHeldElsewhere(pid: Int32?, host: String?)
    /// The session ended; a new one is opened after the delay.
    case sessionEnded(PopError, retryAfter: Duration)
    /// The store cannot be reached for now; instances keep running.
    case storeUnreachable
    /// The store is reachable again; everything is read again.
    case storeReachableAgain
    /// A reconcile pass failed; its changes are kept and it is retried.
    case passFailed(PopError)
    /// Instance records could not be written; they are written again.
    case publishFailed(PopError)
    /// Task results could not be written; they are written again.
    case resultWritesFailed(PopError)
    /// Installed packages could not be recorded yet; they are recorded again.
    case recordingFailed(TaskKey, PopError)
    /// An event arrived that the core's state cannot receive (a bug; a debug build stops at it).
    case inconsistency(String)
}
