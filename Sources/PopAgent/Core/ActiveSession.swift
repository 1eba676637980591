import PopState

/// A store session that is open but not registered yet: its base watches are being set, then the machine registers.
struct SessionSetup: Hashable, Sendable {
    /// Where registering stands.
    enum Step: Hashable, Sendable {
        /// The base watches are being set (watch first, then read: nothing that changes in between is missed).
        case watching
        /// The machine's node is being created.
        case registering
        /// A registration left by a dead agent of this machine is being deleted.
        case replacingStaleRegistration
        /// Another session holds the registration; waiting for it to go.
        case awaitingRelease
    }

    /// Whether the session follows the whole namespace with one subtree watch.
    var followsWholeNamespace: Bool
    /// The watches set or being set.
    var watches: Set<WatchKey>
    /// Where registering stands.
    var step: Step
    /// Whether a write of this machine's node has been seen since the session began (see
    /// ``ActiveSession/machineNodeWritten``).
    var machineNodeWritten = false
}

/// A registered session: what the agent follows in it, what it has published in it, and the work in flight.
struct ActiveSession: Hashable, Sendable {
    /// Whether the session follows the whole namespace with one subtree watch.
    var followsWholeNamespace: Bool
    /// The watches set.
    var watches: Set<WatchKey>
    /// The services whose watches are set (every listed service).
    var watchedServices: Set<ServiceName> = []
    /// Store changes not yet reconciled.
    var pending = PendingChanges(everything: true)
    /// The reconcile pass.
    var pass: Pass = .idle
    /// The batch of instance records being written.
    var publishing: Writing<[ServiceName: RecordWrite]> = .idle
    /// Instance records that someone deleted while the batch that writes them was in flight.
    var deletedWhilePublishing: Set<ServiceName> = []
    /// The instance records this session has created (so a later write is a set).
    var publishedRecords: Set<ServiceName> = []
    /// The task results being written.
    var resultWrites: Writing<[TaskKey: TaskResult]> = .idle
    /// Package recordings in flight.
    var recordingsInFlight: Set<TaskKey> = []
    /// Whether recordings wait after a failure (for the retry timer or a reconnect).
    var recordingsPaused = false
    /// Whether a write of this machine's node has been seen. A deletion seen before it is the echo of a stale
    /// registration this session replaced; one seen after it means someone deleted this session's registration.
    var machineNodeWritten: Bool

    /// Where the reconcile pass stands. A pass reads only what changed (``PendingChanges``); changes that arrive
    /// meanwhile wait for the next pass, so a burst costs one pass.
    enum Pass: Hashable, Sendable {
        /// No pass runs.
        case idle
        /// A step failed; passes wait for the retry timer.
        case paused
        /// Listing the services.
        case listing(PendingChanges)
        /// Setting the watches of newly listed services, before reading them; the listing and the watches count once
        /// the store has set them all.
        case watchingServices(
            PendingChanges, scope: Set<ServiceName>, listed: Set<ServiceName>, adding: Set<WatchKey>)
        /// Reading the services in scope.
        case reading(PendingChanges, scope: Set<ServiceName>)
        /// Reading the rollouts of the configuration restarts planned.
        case gating(PendingChanges, scope: Set<ServiceName>, planned: [ReconcileAction], tasks: Set<TaskKey>)
        /// Setting the watches of the peers of services whose restart waits.
        case watchingPeers(PendingChanges, tasks: Set<TaskKey>, adding: Set<WatchKey>)
        /// Reading task requests.
        case examiningTasks(PendingChanges)
        /// Setting the watches of the task lists of services whose requests wait for other machines' answers.
        case watchingTaskPeers(PendingChanges, adding: Set<WatchKey>)

        /// The changes the pass in flight works on.
        var changes: PendingChanges? {
            switch self {
            case .idle, .paused: nil
            case .listing(let changes), .watchingServices(let changes, _, _, _), .reading(let changes, _),
                .gating(let changes, _, _, _), .watchingPeers(let changes, _, _), .examiningTasks(let changes),
                .watchingTaskPeers(let changes, _):
                changes
            }
        }
    }

    /// A store write that one batch at a time performs.
    enum Writing<Batch: Hashable & Sendable>: Hashable, Sendable {
        /// Nothing in flight.
        case idle
        /// This batch is in flight.
        case inFlight(Batch)
        /// A batch failed; writes wait for the retry timer.
        case paused
    }
}

extension ActiveSession.Writing {
    /// Ends the batch in flight: idle again, or, after a failure, paused until `timer` fires, with a note saying why.
    mutating func finish(
        failure: (any Error)?, note: (PopError) -> AgentNote, resume timer: AgentTimer
    ) -> [AgentAction] {
        guard let failure else {
            self = .idle
            return []
        }
        self = .paused
        return [
            .note(note(PopError.wrapping(failure))), .schedule(timer, after: AgentStateMachine.Configuration.retryPause),
        ]
    }
}

/// Writes the agent still owes the store, kept across sessions.
struct Outbox: Hashable, Sendable {
    /// An update of one instance record.
    enum RecordUpdate: Hashable, Sendable {
        /// Create or set the record.
        case publish(InstanceRecord)
        /// Delete the record.
        case delete
    }

    /// Instance records still to be written, by service.
    var records: [ServiceName: RecordUpdate] = [:]
    /// Task results still to be written (kept until written, so a session change loses none).
    var results: [TaskKey: TaskResult] = [:]
    /// Installed packages still to be recorded, by task.
    var recordings: [TaskKey: PackageRecording] = [:]
}
