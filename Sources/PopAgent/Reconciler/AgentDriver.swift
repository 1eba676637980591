import AsyncAlgorithms
import Foundation
import Logging
import PopState
import ServiceLifecycle

/// What the driver's inbox carries: every event from every source, in the order it arrived.
enum DriverInput: Sendable {
    /// An event for the core; `epoch` names the session it comes from (`nil`: not from a session).
    case event(AgentEvent, epoch: Int?)
    /// A session was opened and its layout checked.
    case opened(SessionHandle)
    /// Graceful shutdown was asked for.
    case shutdown
    /// No input has come for ``MemoryRelease/quietPeriod`` after some work.
    case quiet
}

/// The agent's executor: the only owner of the agent's core (``AgentStateMachine``).
///
/// It consumes one inbox, fed by every source: the supervisor's reports, the session's watches and connection
/// events, and the outcomes of the actions it started. It feeds each input to the core in turn (what queued up
/// meanwhile as one burst) and performs the actions the core returns. Quick actions (starting an instance, dropping a watch) are performed at once; slow ones
/// run as child tasks that report back through the stream: store round trips in the session's task group (ended with
/// the session), stops, task runs and timers in the agent's. No task outlives ``Agent/run()``, and nothing but this
/// driver touches the core.
struct AgentDriver {
    /// The session being opened, or open.
    struct SessionSlot {
        /// Which session.
        let epoch: Int
        /// Finishing it ends the session's task.
        let stop: AsyncStream<Void>.Continuation
        /// Ends once the session's task has stopped following the session and closed the store handle.
        let ended: AsyncStream<Void>
        /// The open session, once it is.
        var handle: SessionHandle?
    }

    let agent: Agent
    var core: AgentStateMachine
    /// Where every source reports.
    let inbox = AgentInbox()
    /// The number of the last session opened.
    var epoch = 0
    /// The current session.
    var session: SessionSlot?
    /// Why the agent stops, when it stops with an error.
    var failure: PopError?
    /// Whether the agent stops.
    var stopping = false
    /// Where the agent's endpoint listens, published in the machine record.
    var endpointAddress: EndpointAddress?

    init(agent: Agent, paths: NamespacePaths) {
        self.agent = agent
        let configuration = agent.configuration
        core = AgentStateMachine(
            configuration: .init(
                machine: configuration.machine, paths: paths,
                followsWholeNamespace: configuration.followsWholeNamespace,
                maximumRetryDelay: configuration.maximumRetryDelay))
    }

    var logger: Logger { agent.logger }

    /// Runs until graceful shutdown, cancellation, or the first session failing (which is thrown).
    mutating func run() async throws {
        let reports = agent.supervisor.events()
        agent.journal?.record(
            LifecycleEvent(.agentStarted, service: nil, pid: getpid(), version: agent.configuration.agentVersion))
        defer { agent.journal?.record(LifecycleEvent(.agentStopped, service: nil, pid: getpid())) }
        adoptInstances()
        // Each burst of work is signalled here; once none has come for a quiet period, the memory the work left
        // behind is returned (the inbox gets `.quiet`). An idle agent has no timer.
        let (work, workDone) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [agent] in try await agent.supervisor.run() }
            group.addTask { [inbox] in
                for await report in reports { inbox.yield(.event(.supervisorReported(report), epoch: nil)) }
            }
            group.addTask { [inbox] in
                for await _ in work.debounce(for: MemoryRelease.quietPeriod) { inbox.yield(.quiet) }
            }
            // The machine record says where the endpoint listens: registering waits until it does.
            if let endpoint = agent.endpoint { endpointAddress = await endpoint() }
            await perform(core.start(), in: &group)
            await withGracefulShutdownHandler {
                // Whatever queued up while the last inputs were handled is fed as one burst.
                while !stopping, let inputs = await inbox.next() {
                    core.beginBurst()
                    var worked = false
                    for input in inputs where !stopping {
                        if case .quiet = input {} else { worked = true }
                        await handle(input, in: &group)
                    }
                    await perform(core.endBurst(), in: &group)
                    guard worked else { continue }
                    // A burst of work leaves freed memory behind; return it once enough has been done, and once
                    // the agent is quiet.
                    await agent.memoryRelease.finished(inputs.count, store: session?.handle?.store)
                    workDone.yield()
                }
                // Ends the wait for a quiet period, so that the task group can end.
                workDone.finish()
            } onGracefulShutdown: { [inbox] in
                inbox.yield(.shutdown)
            }
            if !stopping {
                // Cancelled: end the session all the same (its store handle is closed even under cancellation).
                await perform(core.shutdown(), in: &group)
            }
            if failure == nil {
                logger.info(
                    agent.configuration.stopInstancesOnShutdown
                        ? "agent stopping; stopping every instance" : "agent stopping; instances keep running")
            }
            inbox.finish()
            group.cancelAll()
        }
        if let failure { throw failure }
    }

    /// Re-supervises the instances a previous agent left running, from their local records.
    mutating func adoptInstances() {
        let configuration = agent.configuration
        let folder = configuration.home.instancesFolder(configuration.machine)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in names.sorted() {
            guard let service = try? ServiceName(name) else { continue }
            switch agent.supervisor.adopt(stateDirectory: configuration.stateDirectory(service)) {
            case .adopted(let status):
                let generation = PlacementMemory.read(configuration.stateDirectory(service))
                logger.info(
                    "adopted instance",
                    metadata: [
                        "service": "\(service)", "pid": "\(status.pid ?? 0)", "signature": "\(status.signature.short)",
                    ])
                agent.journal?.record(
                    LifecycleEvent(.adopted, service: service.rawValue, pid: status.pid, signature: status.signature.hex))
                agent.journal?.update(status)
                _ = core.instanceAdopted(status, generation: generation)
            case .gone(_, let reason):
                logger.info(
                    "instance left by a previous agent is gone", metadata: ["service": "\(service)", "reason": "\(reason)"])
            case .noRecord, .alreadySupervised:
                continue
            }
        }
    }

    /// Feeds one input to the core and performs what it asks.
    mutating func handle(_ input: DriverInput, in group: inout ThrowingDiscardingTaskGroup<any Error>) async {
        switch input {
        case .event(let event, let from):
            // What an ended session reports (a late registration, its watch ending, its timer) concerns nothing now.
            if let from, from != session?.epoch { return }
            await feed(event, in: &group)
        case .opened(let handle):
            guard handle.epoch == session?.epoch else { return }
            session?.handle = handle
            await perform(core.sessionOpened(isMachineLocal: handle.store.isMachineLocal), in: &group)
        case .shutdown:
            await perform(core.shutdown(), in: &group)
            stopping = true
        case .quiet:
            await agent.memoryRelease.quiet(store: session?.handle?.store)
        }
    }

    /// Feeds one event to the core and performs what it asks.
    mutating func feed(_ event: AgentEvent, in group: inout ThrowingDiscardingTaskGroup<any Error>) async {
        observe(event)
        let work = Bookkeeping(event)
        let actions = core.receive(event)
        await perform(actions, in: &group)
        await afterwards(work)
    }

    /// What is left to do after an event was handled.
    struct Bookkeeping {
        /// Whether the followed paths may have changed.
        var watchesChanged = false
        /// Units of work done, for ``MemoryRelease``.
        var units = 0

        init(_ event: AgentEvent) {
            if case .watchesAdded = event { watchesChanged = true }
            if case .servicesRead(let snapshots, _) = event { units = snapshots.count }
            if case .recordsPublished(let outcomes, _) = event { units = outcomes.count }
        }
    }

    /// Diagnostics, logs and the endpoint's figures of an event, before the core sees it.
    func observe(_ event: AgentEvent) {
        switch event {
        case .storeChanged(let change):
            agent.diagnostics.saw(change)
        case .supervisorReported(.changed(let status)):
            agent.journal?.update(status)
        case .supervisorReported(.removed(let name)):
            agent.journal?.remove(name)
        case .machineRegistered, .sessionChanged(.connected), .sessionChanged(.reconnected):
            agent.journal?.setStoreConnected(true)
        case .sessionFailed, .sessionChanged(.disconnected), .sessionChanged(.expired), .sessionChanged(.closed),
            .sessionChanged(.authFailed):
            agent.journal?.setStoreConnected(false)
        default:
            break
        }
        if case .machineRegistered = event, let store = session?.handle?.store {
            logger.info("registered machine", metadata: ["store": "\(store)", "session": "\(store.sessionID)"])
        }
    }

    /// Bookkeeping after an event was handled: what the session follows, and the memory a burst of work freed.
    func afterwards(_ work: Bookkeeping) async {
        if work.watchesChanged { showFollowedPaths() }
        await agent.memoryRelease.finished(work.units, store: session?.handle?.store)
    }

    /// Tells the diagnostics what the session follows now.
    func showFollowedPaths() {
        agent.diagnostics.followed((session?.handle?.watches.keys ?? []).map(\.description).sorted())
    }

    // MARK: Actions

    /// Performs actions in order; what a quick action's outcome asks for is performed right after it.
    mutating func perform(_ actions: [AgentAction], in group: inout ThrowingDiscardingTaskGroup<any Error>) async {
        for action in actions {
            let next = await perform(action, in: &group)
            if !next.isEmpty { await perform(next, in: &group) }
        }
    }

    /// Performs one action; returns what the core asks for after a quick action's outcome.
    mutating func perform(
        _ action: AgentAction, in group: inout ThrowingDiscardingTaskGroup<any Error>
    ) async -> [AgentAction] {
        switch action {
        case .openSession:
            openSession(in: &group)
        case .addWatches(let keys, let purpose):
            await roundTrip(in: &group) { session in
                do {
                    try await session.watches.add(keys)
                    return .watchesAdded(purpose)
                } catch {
                    return purpose == .base ? .sessionFailed(error) : .passFailed(error)
                }
            }
        case .dropWatches(let keys):
            session?.handle?.watches.drop(keys)
            showFollowedPaths()
        case .registerMachine:
            let record = machineRecord()
            await roundTrip(in: &group) { await $0.register(record) }
        case .replaceStaleRegistration(let version):
            await roundTrip(in: &group) { await $0.deleteRegistration(version: version) }
        case .awaitRegistrationRelease:
            submit(in: &group) { await $0.awaitRegistrationRelease() }
        case .reportReady(let record):
            agent.onReady(record)
        case .endSession:
            await endSession()
        case .fail(let error):
            failure = error
            stopping = true
        case .schedule(let timer, let delay):
            let epoch = timer.isSessionScoped ? session?.epoch : nil
            group.addTask { [inbox] in
                guard (try? await Task.sleep(for: delay)) != nil else { return }
                inbox.yield(.event(.timerFired(timer), epoch: epoch))
            }
        case .listServices:
            await roundTrip(in: &group) { await $0.listServices() }
        case .readServices(let names):
            await roundTrip(in: &group) { await $0.readServices(names) }
        case .readRollouts(let names):
            await roundTrip(in: &group) { await $0.readRollouts(names) }
        case .revertRollout(let name, let reason):
            // Every agent waiting on the failed batch may ask; the compare-and-set lets one revert, once.
            guard let handle = session?.handle else { break }
            logger.warning(
                "rollout failed; reverting", metadata: ["service": "\(name)", "reason": "\(reason)"])
            group.addTask { [logger] in
                if let outcome = await handle.revertRollout(name, reason: reason) {
                    logger.warning("\(outcome)", metadata: ["service": "\(name)"])
                }
            }
        case .readTasks(let keys):
            await roundTrip(in: &group) { await $0.readTasks(keys) }
        case .launch(let launch):
            return launchInstance(launch)
        case .remove(let name):
            logger.info("stop \(name)", metadata: ["service": "\(name)"])
            group.addTask { [agent, inbox] in
                await agent.supervisor.remove(name)
                PlacementMemory.remove(from: agent.configuration.stateDirectory(name))
                inbox.yield(.event(.instanceRemoved(name), epoch: nil))
            }
        case .publish(let batch):
            await roundTrip(in: &group) { await $0.publish(batch) }
        case .runTask(let launch):
            group.addTask { [agent, inbox] in
                await agent.runTask(launch) { inbox.yield(.event($0, epoch: nil)) }
            }
        case .writeTaskResults(let results):
            await roundTrip(in: &group) { await $0.writeTaskResults(results) }
        case .recordPackages(let key, let recording):
            await roundTrip(in: &group) { await $0.recordPackages(key, recording) }
        case .markEnvironmentComplete(let recording, let packages):
            agent.markEnvironmentComplete(recording, packages: packages)
        case .note(let note):
            log(note)
        }
        return []
    }

    /// Performs one store round trip in the current session and feeds its outcome to the core at once. The driver
    /// waits for it: a round trip is short, inputs that arrive meanwhile queue up and are fed as the next burst, and no
    /// hop to another task and back is added to the agent's reaction.
    mutating func roundTrip(
        in group: inout ThrowingDiscardingTaskGroup<any Error>, _ work: (SessionHandle) async -> AgentEvent
    ) async {
        // An action performed after the outcome of an earlier one ended its session concerns nothing now.
        guard let handle = session?.handle else { return }
        await feed(await work(handle), in: &group)
    }

    /// Starts store work that may wait for long (for another session to go) as a child task; its outcome comes back
    /// as an event of the current session (dropped when the session has ended meanwhile: its store handle is closed
    /// then, so the work fails at once).
    func submit(
        in group: inout ThrowingDiscardingTaskGroup<any Error>,
        _ work: @escaping @Sendable (SessionHandle) async -> AgentEvent
    ) {
        guard let session, let handle = session.handle else { return }
        let epoch = session.epoch
        group.addTask { [inbox] in inbox.yield(.event(await work(handle), epoch: epoch)) }
    }

    // MARK: Sessions

    /// Starts a session's task: it opens the store, then follows the session until it ends.
    mutating func openSession(in group: inout ThrowingDiscardingTaskGroup<any Error>) {
        epoch += 1
        let (stop, stopSink) = AsyncStream.makeStream(of: Void.self)
        let (ended, endedSink) = AsyncStream.makeStream(of: Void.self)
        session = SessionSlot(epoch: epoch, stop: stopSink, ended: ended)
        group.addTask { [agent, inbox, epoch] in
            await agent.runSession(epoch, until: stop, reporting: inbox)
            endedSink.finish()
        }
    }

    /// Ends the current session. An open one is waited for until its store handle is closed, so the next session
    /// starts afresh; one still opening closes what it opens by itself (and shutdown cancels the opening).
    mutating func endSession() async {
        guard let slot = session else { return }
        session = nil
        slot.stop.finish()
        if slot.handle != nil {
            for await _ in slot.ended {}
        }
        agent.diagnostics.followed([])
    }

    /// This machine's registration record.
    func machineRecord() -> MachineRecord {
        let configuration = agent.configuration
        return MachineRecord(
            id: configuration.machine, hostname: MachineAddresses.hostname(), addresses: MachineAddresses.current(),
            agentVersion: configuration.agentVersion, started: agent.started, agentPID: getpid(),
            endpoint: endpointAddress?.description)
    }

    // MARK: Instances

    /// Prepares the instance's folder and has the supervisor run it; reports the outcome to the core at once.
    mutating func launchInstance(_ launch: InstanceLaunch) -> [AgentAction] {
        let name = launch.desired.service
        logger.info("\(launch.plan)", metadata: ["service": "\(name)"])
        do {
            let instance = try agent.prepare(launch)
            // The supervisor restarts an instance whose configuration differs, and clears FATAL doing so.
            agent.supervisor.start(instance)
            switch launch.restart {
            case .requirementRecovered?:
                agent.supervisor.restart(name, because: .requirement)
            case .restartRequested?:
                // One deliberate restart with the current configuration, which clears FATAL and the failure count:
                // when the configuration differs, `start` already begins it and `restart` joins the stop in progress.
                agent.supervisor.restart(name)
            case .configurationChanged?, nil:
                break
            }
            return core.instanceLaunched(name, generation: launch.desired.restartGeneration)
        } catch {
            let message = (error as? PopError)?.message ?? "\(error)"
            logger.error("cannot start instance", metadata: ["service": "\(name)", "error": "\(message)"])
            return core.instanceLaunchFailed(name, reason: message, at: Date())
        }
    }

    // MARK: Logs

    /// Logs a decision of the core.
    func log(_ note: AgentNote) {
        switch note {
        case .serviceUnusable(let name, let message):
            logger.error(
                "service cannot be used; its instance is left as it is",
                metadata: ["service": "\(name)", "error": "\(message)"])
        case .invalidServiceNames(let names):
            for name in names {
                logger.warning("ignoring a service node with an invalid name", metadata: ["node": "\(name)"])
            }
        case .requirementsAwaited(let name, let unmet):
            logger.info(
                "instance waits for its requirements",
                metadata: [
                    "service": "\(name)",
                    "unmet": "\(unmet.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))",
                ])
        case .requirementPolicyApplied(let name, let slot, let policy):
            logger.info(
                "requirement policy applied",
                metadata: ["service": "\(name)", "slot": "\(slot)", "policy": "\(policy.rawValue)"])
        case .rolloutTurnAwaited(let name, let signature):
            logger.info(
                "configuration restart waits for its turn in the rollout",
                metadata: ["service": "\(name)", "signature": "\(signature.short)"])
        case .taskWaits(let key, let unfinished):
            logger.debug(
                "task waits for its turn",
                metadata: ["service": "\(key.service)", "task": "\(key.id)", "unfinished.before": "\(unfinished)"])
        case .malformedTaskRequest(let key, let message):
            logger.error(
                "ignoring a malformed task request",
                metadata: ["service": "\(key.service)", "task": "\(key.id)", "error": "\(message)"])
        case .replacingStaleRegistration(let pid):
            logger.info("replacing the registration of a previous agent of this machine", metadata: ["pid": "\(pid)"])
        case .registrationHeldElsewhere(let pid, let host):
            logger.warning(
                "machine is registered by another session; waiting for it to end",
                metadata: ["pid": "\(pid ?? 0)", "host": "\(host ?? "?")"])
        case .sessionEnded(let error, let delay):
            logger.warning(
                "store session ended; opening a new one (instances keep running)",
                metadata: ["error": "\(error.message)", "retry.after": "\(delay)"])
        case .storeUnreachable:
            logger.warning("store unreachable; instances keep running")
        case .storeReachableAgain:
            logger.info("store reachable again; reconciling")
        case .passFailed(let error):
            logger.warning(
                "reconcile pass failed; instances keep running, retrying", metadata: ["error": "\(error.message)"])
        case .publishFailed(let error):
            logger.warning("cannot publish instance records; retrying", metadata: ["error": "\(error.message)"])
        case .resultWritesFailed(let error):
            logger.warning("cannot write task results; retrying", metadata: ["error": "\(error.message)"])
        case .recordingFailed(let key, let error):
            logger.warning(
                "cannot record installed packages yet; retrying",
                metadata: ["service": "\(key.service)", "task": "\(key.id)", "error": "\(error.message)"])
        case .inconsistency(let message):
            logger.error("\(message)")
        }
    }
}
