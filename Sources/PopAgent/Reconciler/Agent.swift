#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import PopState
import ServiceLifecycle
import Synchronization

/// The machine agent: keeps this machine at the desired state in the coordination store.
///
/// On ``run()`` it adopts the instances a previous agent left running, opens a store session, registers the machine
/// as an ephemeral node, follows what concerns this machine with persistent watches (``SessionWatches``), and
/// reconciles: it starts what is placed here, stops what is not, restarts what runs an old configuration or was asked
/// to restart, runs `pop run` tasks, and publishes every instance's record. When the store cannot be reached, instances keep running untouched; when the
/// session expires, the agent opens a new one, registers again and reconciles, never duplicating an instance.
///
/// Graceful shutdown (ServiceLifecycle) leaves instances running unless
/// ``AgentConfiguration/stopInstancesOnShutdown`` is set; the next agent adopts them.
public final class Agent: Service, Sendable {
    /// The configuration.
    public let configuration: AgentConfiguration
    let openStore: @Sendable () async throws -> any CoordinationStore
    let logger: Logger
    let supervisor: Supervisor
    let onReady: @Sendable (MachineRecord) -> Void
    let started = Date()
    let state = Mutex(AgentState())
    let operations: AsyncStream<AgentOperation>
    let operationSink: AsyncStream<AgentOperation>.Continuation
    let memoryRelease = MemoryRelease()

    /// Creates an agent.
    ///
    /// - Parameters:
    ///   - configuration: The machine, paths and behaviour.
    ///   - openStore: Opens a new store session; called at start and again after a session expired.
    ///   - logger: Where the agent logs each decision.
    ///   - onReady: Called once, when the machine is first registered (for `pop start`'s readiness pipe).
    public init(
        configuration: AgentConfiguration, openStore: @escaping @Sendable () async throws -> any CoordinationStore,
        logger: Logger, onReady: @escaping @Sendable (MachineRecord) -> Void = { _ in }
    ) throws(PopError) {
        self.configuration = configuration
        self.openStore = openStore
        var logger = logger
        logger[metadataKey: "machine"] = "\(configuration.machine)"
        self.logger = logger
        self.onReady = onReady
        do {
            self.supervisor = try Supervisor(
                options: .init(stopInstancesOnShutdown: configuration.stopInstancesOnShutdown), logger: logger)
        } catch {
            throw error.popError
        }
        (operations, operationSink) = AsyncStream.makeStream(of: AgentOperation.self)
    }

    /// The machine this agent runs.
    public var machine: MachineID { configuration.machine }

    /// How many store events the agent's watches have delivered since it started. For diagnostics and tests.
    public var storeEventsSeen: Int { eventsSeen.load(ordering: .relaxed) }
    let eventsSeen = Atomic<Int>(0)

    /// What the current session follows in the store, sorted: a node's path, or `PATH/**` for a whole subtree; empty
    /// between sessions. For diagnostics and tests.
    public var followedPaths: [String] {
        let watches = state.withLock { $0.session?.watches }
        return (watches?.keys.map(\.description) ?? []).sorted()
    }

    /// Runs the agent until graceful shutdown or cancellation.
    ///
    /// Throws when the first store session cannot be opened or the machine cannot be registered (the store is
    /// unreachable, pop's namespace does not exist, another agent runs for this machine); later faults are waited out.
    public func run() async throws {
        try configuration.home.ensurePrivateFolder(configuration.home.instancesFolder(machine))
        let events = supervisor.events()
        adoptInstances()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.supervisor.run() }
            group.addTask { await self.followSupervisor(events) }
            group.addTask { await self.performOperations() }
            defer {
                operationSink.finish()
                group.cancelAll()
            }
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.converge()
                }
            } catch is CancellationError {
                // Graceful shutdown or cancellation: a normal end.
            }
            logger.info(
                configuration.stopInstancesOnShutdown
                    ? "agent stopping; stopping every instance" : "agent stopping; instances keep running")
        }
    }

    // MARK: Sessions

    /// Opens sessions one after another until cancelled: the first failure to register is thrown, later ones are
    /// retried with a bounded backoff.
    func converge() async throws {
        var registeredOnce = false
        var failures = 0
        while !Task.isCancelled {
            let store: any CoordinationStore
            do {
                store = try await openStore()
            } catch {
                if !registeredOnce { throw error }
                failures += 1
                logger.warning(
                    "cannot open a store session; instances keep running",
                    metadata: ["error": "\(error)", "retry.attempt": "\(failures)"])
                try await Task.sleep(for: retryDelay(failures))
                continue
            }
            do {
                try await runSession(store) {
                    registeredOnce = true
                    failures = 0
                }
            } catch {
                await Self.close(store)
                if Task.isCancelled { break }
                if !registeredOnce { throw error }
                failures += 1
                logger.warning(
                    "store session ended; opening a new one (instances keep running)",
                    metadata: ["error": "\(error)", "store": "\(store)"])
                try await Task.sleep(for: retryDelay(failures))
                continue
            }
            await Self.close(store)
        }
        state.withLock { $0.session = nil }
    }

    /// Closes a store handle even when the calling task is cancelled (as it is at shutdown), so the session's
    /// ephemeral nodes are deleted at once rather than when the session expires.
    static func close(_ store: any CoordinationStore) async {
        await Task { await store.close() }.value
    }

    func retryDelay(_ failures: Int) -> Duration {
        let milliseconds = min(100 * (1 << min(failures, 10)), Int(configuration.maximumRetryDelay.components.seconds * 1000))
        return .milliseconds(max(100, milliseconds))
    }

    /// One session: register, then follow the store and reconcile until the session ends (throws) or the task is
    /// cancelled (returns).
    func runSession(_ store: any CoordinationStore, registered: () -> Void) async throws {
        let namespace = try PopNamespace(store: store, prefix: configuration.prefix)
        try await namespace.checkLayout()
        // Watch first, then read: nothing that changes in between is missed. The services' own watches are set by
        // the first pass, before it reads them (see ``track(_:session:)``).
        let paths = namespace.paths
        let watches = SessionWatches(
            store: store, wholeNamespace: configuration.followsWholeNamespace ?? store.isMachineLocal)
        defer { watches.finish() }
        if watches.wholeNamespace {
            try await watches.add([.subtree(namespace.prefix)])
        } else {
            try await watches.add([.node(paths.services), .node(paths.machines), .node(paths.machine(machine))])
        }
        let sessionEvents = store.sessionEvents()
        let record = try await register(namespace)
        let session = AgentSession(namespace: namespace, reconcile: Wakeup(), publish: Wakeup(), watches: watches)
        state.withLock { state in
            state.session = session
            state.pending = PendingChanges(everything: true)
            state.publishedNodes = []
            state.watchedServices = []
            for name in Set(state.statuses.keys).union(state.problems.keys) {
                state.refreshRecord(name, machine: machine)
            }
        }
        logger.info("registered machine", metadata: ["store": "\(store)", "session": "\(store.sessionID)"])
        registered()
        readyReported.callOnce { onReady(record) }
        session.reconcile.signal()
        session.publish.signal()
        defer {
            state.withLock { state in
                state.session = nil
            }
            session.reconcile.finish()
            session.publish.finish()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.followStore(watches.events, session: session) }
            group.addTask { try await self.followSession(sessionEvents, session: session) }
            group.addTask { try await self.reconcileLoop(session) }
            group.addTask { try await self.publishLoop(session) }
            defer { group.cancelAll() }
            while try await group.next() != nil {}
        }
    }

    /// The watches that follow one service for this machine: its spec, its packages, this machine's placement with
    /// this machine's instance record below it, and its task requests with their results.
    static func serviceWatches(_ name: ServiceName, paths: NamespacePaths, machine: MachineID) -> [SessionWatches.Key] {
        [
            .node(paths.service(name)), .node(paths.packages(name)), .subtree(paths.placement(name, machine)),
            .subtree(paths.tasks(name)),
        ]
    }

    /// Follows the services in `listed` from now on and stops following those no longer listed; returns the services
    /// that started or stopped being followed, which the caller reads (after the watches are set, so nothing is
    /// missed).
    func track(_ listed: Set<ServiceName>, session: AgentSession) async throws -> Set<ServiceName> {
        let paths = session.namespace.paths
        let watched = state.withLock { $0.watchedServices }
        let added = listed.subtracting(watched)
        let removed = watched.subtracting(listed)
        if session.watches.wholeNamespace {
            // One subtree watch follows everything already.
            state.withLock { $0.watchedServices = listed }
            return added.union(removed)
        }
        if !removed.isEmpty {
            let prefixes = removed.map { paths.service($0) }
            session.watches.drop { key in
                prefixes.contains { key.path == $0 || key.path.hasPrefix($0 + "/") }
            }
        }
        try await session.watches.add(added.flatMap { Self.serviceWatches($0, paths: paths, machine: machine) })
        state.withLock { state in
            state.watchedServices.subtract(removed)
            state.watchedServices.formUnion(added)
        }
        return added.union(removed)
    }

    let readyReported = OnceFlag()

    /// Registers the machine; a registration left by a dead agent of this machine is replaced, one of a live agent
    /// elsewhere is waited out (it vanishes when that session expires).
    func register(_ namespace: PopNamespace) async throws -> MachineRecord {
        let record = MachineRecord(
            id: machine, hostname: MachineAddresses.hostname(), addresses: MachineAddresses.current(),
            agentVersion: configuration.agentVersion, started: started, agentPID: getpid())
        let path = namespace.paths.machine(machine)
        while true {
            do {
                try await namespace.registerMachine(record)
                return record
            } catch let error as PopError where error.code == .conflict {
                let (stat, watch) = try await namespace.store.existsAndWatch(path)
                guard let stat else {
                    watch.cancel()
                    continue
                }
                let node = try? await namespace.store.get(path)
                let other = node.flatMap { try? PopJSON.decoder().decode(MachineRecord.self, from: Data($0.data)) }
                if let other, other.hostname == record.hostname, !Self.isAlive(other.agentPID) || other.agentPID == getpid()
                {
                    logger.info(
                        "replacing the registration of a previous agent of this machine",
                        metadata: ["pid": "\(other.agentPID)"])
                    watch.cancel()
                    try? await namespace.store.delete(path, version: stat.version)
                    continue
                }
                logger.warning(
                    "machine is registered by another session; waiting for it to end",
                    metadata: ["pid": "\(other?.agentPID ?? 0)", "host": "\(other?.hostname ?? "?")"])
                _ = try await watch.event()
            }
        }
    }

    static func isAlive(_ pid: Int32) -> Bool {
        ProcessTable.isAlive(pid)
    }

    /// Follows the session's watches, turning events into pending changes; throws when the session ends.
    func followStore(_ changes: NodeEvents, session: AgentSession) async throws {
        let paths = session.namespace.paths
        let machinePath = paths.machine(machine)
        for try await event in changes {
            eventsSeen.add(1, ordering: .relaxed)
            if event.path == machinePath {
                if event.kind == .deleted { throw PopError(.conflict, "This machine's registration was deleted.") }
                continue
            }
            let woken = rolloutWakeups(event, paths: paths)
            if !woken.isEmpty {
                state.withLock { $0.pending.services.formUnion(woken) }
                session.reconcile.signal()
            }
            guard let change = StoreChange.classify(event, servicesPath: paths.services, machine: machine) else {
                continue
            }
            if case .instanceRecord(let service) = change {
                // A deletion: the agent forgets a record before deleting it itself, so a record it still counts as
                // published was deleted by someone else, and is written again.
                let wake = state.withLock { state -> Bool in
                    guard state.publishedNodes.remove(service) != nil else { return false }
                    guard state.dirtyRecords[service] == nil, state.statuses[service] != nil else { return false }
                    state.refreshRecord(service, machine: machine)
                    return true
                }
                if wake { session.publish.signal() }
                continue
            }
            state.withLock { $0.pending.add(change) }
            session.reconcile.signal()
        }
        throw PopError(.storeUnreachable, "The store's watch ended.")
    }

    /// Follows the session's state: a reconnect asks for a full pass, an expiry ends the session.
    func followSession(_ events: AsyncStream<SessionEvent>, session: AgentSession) async throws {
        for await event in events {
            switch event {
            case .connected:
                continue
            case .disconnected:
                logger.warning("store unreachable; instances keep running")
            case .reconnected:
                logger.info("store reachable again; reconciling")
                state.withLock { $0.pending.everything = true }
                session.reconcile.signal()
                session.publish.signal()
            case .expired:
                throw PopError(.storeUnreachable, "The store session expired.")
            case .closed:
                throw PopError(.storeUnreachable, "The store session was closed.")
            case .authFailed:
                throw SessionEvent.authenticationError
            }
        }
    }

    // MARK: Supervisor

    /// Re-supervises the instances a previous agent left running, from their local records.
    func adoptInstances() {
        let folder = configuration.home.instancesFolder(machine)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in names.sorted() {
            guard let service = try? ServiceName(name) else { continue }
            let outcome = supervisor.adopt(stateDirectory: configuration.stateDirectory(service))
            switch outcome {
            case .adopted(let status):
                let generation = PlacementMemory.read(configuration.stateDirectory(service))
                state.withLock { state in
                    state.statuses[service] = status
                    state.generations[service] = generation
                }
                logger.info(
                    "adopted instance",
                    metadata: ["service": "\(service)", "pid": "\(status.pid ?? 0)", "signature": "\(status.signature.short)"])
            case .gone(_, let reason):
                logger.info("instance left by a previous agent is gone", metadata: ["service": "\(service)", "reason": "\(reason)"])
            case .noRecord, .alreadySupervised:
                continue
            }
        }
    }

    /// Mirrors the supervisor's events into the state and asks for records to be published.
    func followSupervisor(_ events: AsyncStream<InstanceEvent>) async {
        for await event in events {
            let (session, tasksReady) = state.withLock { state -> (AgentSession?, Bool) in
                var tasksReady = false
                switch event {
                case .changed(let status):
                    state.statuses[status.name] = status
                    // A command about to be spawned has no process yet; its record is written once it has one
                    // (milliseconds later), which saves a store write per instance in a burst.
                    if status.state != .starting || status.pid != nil {
                        state.refreshRecord(status.name, machine: machine)
                    }
                    if status.state != .installing {
                        // Tasks wait while their instance installs; look at them again now.
                        let waiting = state.tasks.filter { $0.key.service == status.name && $0.value == .waiting }
                        if !waiting.isEmpty {
                            state.pending.tasks[status.name, default: []].formUnion(waiting.map(\.key.id.rawValue))
                            tasksReady = true
                        }
                    }
                case .removed(let name):
                    state.statuses.removeValue(forKey: name)
                    state.generations.removeValue(forKey: name)
                    state.refreshRecord(name, machine: machine)
                }
                return (state.session, tasksReady)
            }
            session?.publish.signal()
            if tasksReady { session?.reconcile.signal() }
        }
    }
}

/// Runs a closure at most once.
final class OnceFlag: Sendable {
    private let done = Atomic<Bool>(false)

    /// Calls `body` the first time only.
    func callOnce(_ body: () -> Void) {
        if done.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            body()
        }
    }
}
