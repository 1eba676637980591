import Foundation
import PopState

/// The agent's core: everything the agent knows, as one value. Each event is a mutating method that returns the
/// actions to take; nothing here performs I/O, reads the clock or takes a lock. ``Agent``'s driver is the only owner:
/// it feeds every event in the order it arrived and performs the actions, whose outcomes come back as events.
///
/// The session is an enum whose cases carry what exists only in them (``SessionSetup``, ``ActiveSession``); each
/// service is one ``ServiceEntry``. An event that the current state cannot receive is a bug: a debug build stops at it
/// (`assertionFailure`), a release build logs it (``AgentNote/inconsistency(_:)``) and changes nothing.
struct AgentStateMachine: Sendable {
    /// What the core needs to know about its agent.
    struct Configuration: Hashable, Sendable {
        /// This machine.
        var machine: MachineID
        /// pop's paths in the store.
        var paths: NamespacePaths
        /// `nil`: follow the whole namespace when the store is machine-local (``AgentConfiguration``).
        var followsWholeNamespace: Bool?
        /// The longest wait between attempts to open a session.
        var maximumRetryDelay: Duration

        /// The pause after a failed pass or write before the next attempt.
        static let retryPause: Duration = .seconds(1)
    }

    /// The store session, from opening to registered.
    enum Session: Hashable, Sendable {
        /// ``AgentStateMachine/start()`` has not been called.
        case idle
        /// A store session is being opened.
        case opening
        /// The session is open; the machine is not registered yet.
        case settingUp(SessionSetup)
        /// The machine is registered: the agent reconciles and publishes.
        case registered(ActiveSession)
        /// The session ended; a new one is opened when the timer fires.
        case waitingToReopen
        /// The agent stopped (shut down, or its first session failed).
        case stopped
        /// Transient, while a method mutates an active session in place (so its collections are not copied).
        case modifying
    }

    /// What the core was configured with.
    let configuration: Configuration
    /// The store session.
    var session: Session = .idle
    /// Every service the agent knows of: in the store, running here, or with work in flight.
    var services: [ServiceName: ServiceEntry] = [:]
    /// Writes still owed to the store.
    var outbox = Outbox()
    /// Whether the machine has registered once (later session failures are waited out).
    var registeredOnce = false
    /// Session failures in a row, for the backoff.
    var failures = 0
    /// The services whose activity is ``ServiceEntry/Activity/awaitingRolloutTurn(_:)`` (an index of `services`).
    var rolloutWaits: Set<ServiceName> = []
    /// The services placed here whose template requires others, each with the services it requires (an index of
    /// `services`, so that a store event finds the dependents it wakes without looking at every service).
    var requiring: [ServiceName: Set<ServiceName>] = [:]
    /// One copy of each template the placed specs use.
    var templates: Set<ResolvedTemplate> = []
    /// When the earliest requirement debounce scheduled runs out, while its timer is pending.
    var requirementRecheck: Date?
    /// Whether the driver is feeding a burst of events that queued up (see ``beginBurst()``).
    var inBurst = false

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    var machine: MachineID { configuration.machine }
    var paths: NamespacePaths { configuration.paths }

    /// Feeds one event.
    mutating func receive(_ event: AgentEvent) -> [AgentAction] {
        switch event {
        case .sessionOpened(let isMachineLocal): sessionOpened(isMachineLocal: isMachineLocal)
        case .sessionFailed(let error): sessionFailed(error)
        case .sessionChanged(let change): sessionChanged(change)
        case .watchesAdded(let purpose): watchesAdded(purpose)
        case .machineRegistered(let record): machineRegistered(record)
        case .registrationConflict(let ours, let holder): registrationConflict(ours: ours, holder: holder)
        case .staleRegistrationRemoved: staleRegistrationRemoved()
        case .registrationReleased: registrationReleased()
        case .storeChanged(let change): storeChanged(change)
        case .servicesListed(let names): servicesListed(names)
        case .servicesRead(let snapshots, let now): servicesRead(snapshots, at: now)
        case .rolloutsRead(let views): rolloutsRead(views)
        case .tasksRead(let views, let now): tasksRead(views, at: now)
        case .passFailed(let error): passFailed(error)
        case .instanceAdopted(let status, let generation): instanceAdopted(status, generation: generation)
        case .instanceLaunched(let name, let generation): instanceLaunched(name, generation: generation)
        case .instanceLaunchFailed(let name, let reason, let now): instanceLaunchFailed(name, reason: reason, at: now)
        case .supervisorReported(let report): supervisorReported(report)
        case .instanceRemoved(let name): instanceRemoved(name)
        case .recordsPublished(let outcomes, let failure): recordsPublished(outcomes, failure: failure)
        case .taskStarted(let key, let result): taskStarted(key, result)
        case .taskFinished(let key, let result): taskFinished(key, result)
        case .packagesInstalled(let key, let recording): packagesInstalled(key, recording)
        case .packagesRecorded(let key, let packages): packagesRecorded(key, packages)
        case .packagesNotRecorded(let key, let error): packagesNotRecorded(key, error)
        case .taskResultsWritten(let written, let failure): taskResultsWritten(written, failure: failure)
        case .timerFired(let timer): timerFired(timer)
        }
    }

    // MARK: Lifecycle

    /// The agent starts: open the first session.
    mutating func start() -> [AgentAction] {
        guard case .idle = session else { return unexpected("start") }
        session = .opening
        return [.openSession]
    }

    /// The agent shuts down: end the session, if there is one (or one is being opened).
    mutating func shutdown() -> [AgentAction] {
        let hadSession: Bool
        switch session {
        case .opening, .settingUp, .registered: hadSession = true
        case .idle, .waitingToReopen, .stopped: hadSession = false
        case .modifying: return unexpected("shutdown")
        }
        session = .stopped
        return hadSession ? [.endSession] : []
    }

    // MARK: Sessions

    /// A session is open: set the base watches before anything is read.
    mutating func sessionOpened(isMachineLocal: Bool) -> [AgentAction] {
        guard case .opening = session else { return unexpected("sessionOpened") }
        let whole = configuration.followsWholeNamespace ?? isMachineLocal
        let watches: Set<WatchKey> =
            whole
            ? [.subtree(paths.root)]
            : [.subtree(paths.assignments(machine)), .node(paths.machines), .node(paths.machine(machine))]
        session = .settingUp(SessionSetup(followsWholeNamespace: whole, watches: watches, step: .watching))
        return [.addWatches(watches, purpose: .base)]
    }

    /// Watches asked for are set.
    mutating func watchesAdded(_ purpose: WatchPurpose) -> [AgentAction] {
        switch purpose {
        case .base:
            guard case .settingUp(var setup) = session, setup.step == .watching else { break }
            setup.step = .registering
            session = .settingUp(setup)
            return [.registerMachine]
        case .services:
            guard case .registered(var active) = session,
                case .watchingServices(let changes, let scope, let listed, let adding) = active.pass
            else { break }
            session = .modifying
            active.watches.formUnion(adding)
            active.watchedServices = listed
            active.pass = .reading(changes, scope: scope)
            session = .registered(active)
            return [.readServices(scope.sorted())] + proceed()
        case .rolloutPeers(let held):
            guard case .registered(var active) = session,
                case .watchingPeers(let changes, let tasks, let adding) = active.pass
            else { break }
            session = .modifying
            active.watches.formUnion(adding)
            // Their peers may have moved on before the watches were set: read them again.
            active.pending.services.formUnion(held)
            let actions = examineTasks(tasks, changes: changes, in: &active)
            session = .registered(active)
            return actions + proceed()
        case .taskPeers(let waiting):
            guard case .registered(var active) = session, case .watchingTaskPeers(_, let adding) = active.pass
            else { break }
            session = .modifying
            active.watches.formUnion(adding)
            // Their peers may have answered before the watches were set: look at the requests again.
            for key in waiting { active.pending.tasks[key.service, default: []].insert(key.id.rawValue) }
            active.pass = .idle
            session = .registered(active)
            return proceed()
        }
        return unexpected("watchesAdded(\(purpose))")
    }

    /// The machine is registered: publish every record afresh and read everything.
    mutating func machineRegistered(_ record: MachineRecord) -> [AgentAction] {
        guard case .settingUp(let setup) = session, setup.step == .registering else {
            return unexpected("machineRegistered")
        }
        failures = 0
        var actions: [AgentAction] = []
        if !registeredOnce {
            registeredOnce = true
            actions.append(.reportReady(record))
        }
        session = .registered(
            ActiveSession(
                followsWholeNamespace: setup.followsWholeNamespace, watches: setup.watches,
                machineNodeWritten: setup.machineNodeWritten))
        for (name, entry) in services where entry.supervision?.status != nil || entry.problem != nil {
            markRecord(name)
        }
        return actions + proceed()
    }

    /// Another session holds this machine's registration: replace it when it is a dead agent's of this host, wait
    /// for it to go otherwise.
    mutating func registrationConflict(ours: MachineRecord, holder: RegistrationHolder?) -> [AgentAction] {
        guard case .settingUp(var setup) = session, setup.step == .registering else {
            return unexpected("registrationConflict")
        }
        guard let holder else { return [.registerMachine] }  // Gone meanwhile.
        if let other = holder.record, other.hostname == ours.hostname, !holder.alive || other.agentPID == ours.agentPID
        {
            setup.step = .replacingStaleRegistration
            session = .settingUp(setup)
            return [
                .note(.replacingStaleRegistration(pid: other.agentPID)),
                .replaceStaleRegistration(version: holder.version),
            ]
        }
        setup.step = .awaitingRelease
        session = .settingUp(setup)
        return [
            .note(.registrationHeldElsewhere(pid: holder.record?.agentPID, host: holder.record?.hostname)),
            .awaitRegistrationRelease,
        ]
    }

    /// The stale registration is deleted: register.
    mutating func staleRegistrationRemoved() -> [AgentAction] {
        guard case .settingUp(var setup) = session, setup.step == .replacingStaleRegistration else {
            return unexpected("staleRegistrationRemoved")
        }
        setup.step = .registering
        session = .settingUp(setup)
        return [.registerMachine]
    }

    /// The other session's registration is gone: register.
    mutating func registrationReleased() -> [AgentAction] {
        guard case .settingUp(var setup) = session, setup.step == .awaitingRelease else {
            return unexpected("registrationReleased")
        }
        setup.step = .registering
        session = .settingUp(setup)
        return [.registerMachine]
    }

    /// The session's connection changed.
    mutating func sessionChanged(_ change: SessionEvent) -> [AgentAction] {
        switch session {
        case .settingUp, .registered:
            break
        case .idle, .opening, .waitingToReopen, .stopped, .modifying:
            return unexpected("sessionChanged(\(change))")
        }
        switch change {
        case .connected:
            return []
        case .disconnected:
            return [.note(.storeUnreachable)]
        case .reconnected:
            guard case .registered(var active) = session else { return [.note(.storeReachableAgain)] }
            session = .modifying
            active.pending.everything = true
            session = .registered(active)
            return [.note(.storeReachableAgain)] + proceed()
        case .expired:
            return sessionFailed(PopError(.storeUnreachable, "The store session expired."))
        case .closed:
            return sessionFailed(PopError(.storeUnreachable, "The store session was closed."))
        case .authFailed:
            return sessionFailed(SessionEvent.authenticationError)
        }
    }

    /// The session cannot be used (or could not be opened): end it, then open a new one after a backoff; before the
    /// first registration, stop the agent with the error.
    mutating func sessionFailed(_ error: any Error) -> [AgentAction] {
        var actions: [AgentAction]
        switch session {
        case .opening, .settingUp, .registered: actions = [.endSession]
        case .idle, .waitingToReopen, .stopped, .modifying: return unexpected("sessionFailed")
        }
        let error = PopError.wrapping(error)
        guard registeredOnce else {
            session = .stopped
            return actions + [.fail(error)]
        }
        failures += 1
        let delay = retryDelay(failures)
        session = .waitingToReopen
        actions += [.note(.sessionEnded(error, retryAfter: delay)), .schedule(.reopenSession, after: delay)]
        return actions
    }

    /// 100 ms doubling with each failure, up to the configured maximum.
    func retryDelay(_ failures: Int) -> Duration {
        let limit = Int(configuration.maximumRetryDelay.components.seconds * 1000)
        let milliseconds = min(100 * (1 << min(failures, 10)), limit)
        return .milliseconds(max(100, milliseconds))
    }

    // MARK: Timers

    /// A timer fired.
    mutating func timerFired(_ timer: AgentTimer) -> [AgentAction] {
        if timer == .reopenSession {
            guard case .waitingToReopen = session else { return unexpected("timerFired(\(timer))") }
            session = .opening
            return [.openSession]
        }
        guard case .registered(var active) = session else { return unexpected("timerFired(\(timer))") }
        session = .modifying
        var resumed = true
        switch timer {
        case .resumePasses:
            if active.pass == .paused { active.pass = .idle } else { resumed = false }
        case .resumePublishing:
            if active.publishing == .paused { active.publishing = .idle } else { resumed = false }
        case .resumeResultWrites:
            if active.resultWrites == .paused { active.resultWrites = .idle } else { resumed = false }
        case .resumeRecordings:
            if active.recordingsPaused { active.recordingsPaused = false } else { resumed = false }
        case .recheckRollouts:
            active.pending.services.formUnion(rolloutWaits)
        case .recheckRequirements:
            requirementRecheck = nil
            active.pending.services.formUnion(dependents(of: nil))
        case .reopenSession:
            resumed = false
        }
        session = .registered(active)
        guard resumed else { return unexpected("timerFired(\(timer))") }
        return proceed()
    }

    // MARK: Proceeding

    /// The driver is about to feed several events that queued up meanwhile: new work (the next pass, the next batch
    /// of writes) waits for ``endBurst()``, so that the whole burst costs one pass and one batch.
    mutating func beginBurst() {
        inBurst = true
    }

    /// The burst is fed: start what can start now.
    mutating func endBurst() -> [AgentAction] {
        inBurst = false
        return proceed()
    }

    /// Starts whatever can start now: the next pass when changes wait, the next batch of records, results and
    /// package recordings. Every event ends here (or, in a burst, the burst does), so work never waits for anything
    /// but its own turn.
    mutating func proceed() -> [AgentAction] {
        guard !inBurst, case .registered(var active) = session else { return [] }
        if active.pass == .idle, let known = active.pending.knownServices(after: active.watchedServices) {
            // The assignments that came and went name the services placed here now: the pass goes on as if it had
            // listed them, without the round trip.
            session = .modifying
            active.pass = .listing(active.pending)
            active.pending = PendingChanges()
            session = .registered(active)
            return servicesListed(known.map(\.rawValue).sorted())
        }
        session = .modifying
        var actions: [AgentAction] = []
        if active.pass == .idle, !active.pending.isEmpty {
            actions.append(startPass(in: &active))
        }
        if active.publishing == .idle, !outbox.records.isEmpty {
            actions.append(startPublishing(in: &active))
        }
        if active.resultWrites == .idle, !outbox.results.isEmpty {
            active.resultWrites = .inFlight(outbox.results)
            actions.append(.writeTaskResults(outbox.results))
        }
        if !active.recordingsPaused, !outbox.recordings.isEmpty {
            for key in outbox.recordings.keys.sorted() where !active.recordingsInFlight.contains(key) {
                active.recordingsInFlight.insert(key)
                actions.append(.recordPackages(key, outbox.recordings[key]!))
            }
        }
        session = .registered(active)
        return actions
    }

    // MARK: Inconsistencies

    /// An event the current state cannot receive: stops a debug build, and is logged (and otherwise ignored) in a
    /// release build.
    func unexpected(_ event: String) -> [AgentAction] {
        let message = "The agent's core cannot receive \(event) while \(stateSummary)."
        assertionFailure(message)
        return [.note(.inconsistency(message))]
    }

    /// A short description of the state, for inconsistency reports.
    var stateSummary: String {
        switch session {
        case .idle: "idle"
        case .opening: "opening a session"
        case .settingUp(let setup): "setting up a session (\(setup.step))"
        case .registered(let active): "registered (pass \(active.pass.name))"
        case .waitingToReopen: "waiting to open a session"
        case .stopped: "stopped"
        case .modifying: "modifying"
        }
    }
}

extension ActiveSession.Pass {
    /// The phase's name, for reports.
    var name: String {
        switch self {
        case .idle: "idle"
        case .paused: "paused"
        case .listing: "listing"
        case .watchingServices: "watching services"
        case .reading: "reading"
        case .gating: "gating rollouts"
        case .watchingPeers: "watching rollout peers"
        case .examiningTasks: "examining tasks"
        case .watchingTaskPeers: "watching the answers to waiting task requests"
        }
    }
}

extension PopError {
    /// `error` itself when it is a ``PopError``, or one describing it.
    static func wrapping(_ error: any Error) -> PopError {
        (error as? PopError) ?? PopError(.system, "\(error)")
    }
}
