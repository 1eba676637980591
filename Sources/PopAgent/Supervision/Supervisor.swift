import Foundation
import Logging
import PopState
import ServiceLifecycle
import Synchronization

/// Runs instances as supervised processes on this machine and reports every change of their state.
///
/// It takes concrete instructions (``start(_:)``, ``stop(_:)``, ``restart(_:)``, ``remove(_:)``, ``adopt(stateDirectory:)``)
/// and knows nothing of the coordination store. Each instance runs in its own session and process group, writes its
/// output into pipes read by a log writer of its own (never by the agent, see ``LogWriter``), is watched through a
/// pidfd, restarted with backoff when it exits unexpectedly, health-checked if it has a check, and recorded on disk
/// before its program runs, so a later agent can adopt it.
///
/// One event thread, owned by ``run()``, waits on every process handle and probe socket at once; it
/// uses no CPU while nothing happens. Call ``run()`` (or put the supervisor in a `ServiceGroup`) before expecting
/// exits, restarts or health checks to be handled. When ``run()`` ends, instances keep running unless
/// ``Options/stopInstancesOnShutdown`` is set, so the next agent can adopt them.
public final class Supervisor: Service, Sendable {
    /// How the supervisor behaves as a whole.
    public struct Options: Sendable {
        /// Stop every instance when ``run()`` ends (by default they keep running, to be adopted).
        public var stopInstancesOnShutdown: Bool
        /// Gets every lifecycle event of an instance as it happens (started, exited, restarted and why, backoff, fatal,
        /// health, stopped), in order per instance; the agent writes them to the instance's journal.
        public var lifecycle: @Sendable (LifecycleEvent) -> Void

        /// Creates options.
        public init(stopInstancesOnShutdown: Bool = false, lifecycle: @escaping @Sendable (LifecycleEvent) -> Void = { _ in }) {
            self.stopInstancesOnShutdown = stopInstancesOnShutdown
            self.lifecycle = lifecycle
        }
    }

    /// What ``adopt(stateDirectory:)`` found.
    public enum AdoptionOutcome: Hashable, Sendable {
        /// The recorded process is alive and is supervised again, with the same pid.
        case adopted(InstanceStatus)
        /// There is no record in the folder.
        case noRecord
        /// The recorded process is gone (or its pid now belongs to another process); nothing was adopted.
        case gone(ServiceName, reason: String)
        /// The instance is already supervised here.
        case alreadySupervised(ServiceName)
    }

    /// A process the supervisor waits on.
    struct WatchedProcess: Sendable {
        var pid: Int32
        var handle: Int32
        var token: UInt64
        /// Whether it is our child, so its exit status can be collected.
        var isChild: Bool
        /// The setup step's name, for a setup process.
        var stepName: String?
    }

    /// An instance's state. Its fields live in one box, copied on write (``CopyOnWriteBox``), and are reached as the
    /// entry's own (`entry.machine`): the table of instances then holds a pointer per slot.
    @dynamicMemberLookup
    struct Entry: Sendable {
        struct Fields: Sendable {
            var configuration: InstanceConfiguration
            var machine: InstanceStateMachine
            /// The signature of the configuration the current process runs.
            var processSignature: ConfigSignature?
            var process: WatchedProcess?
            var stopWaiters: [CheckedContinuation<Void, Never>] = []
            /// What every start of this configuration needs and can reuse: folders made, program found.
            var prepared: PreparedLaunch?
            /// The write ends of the command's log pipes, kept while the instance is meant to run so that its next
            /// process writes to the same log writer; closed once it has stopped for good.
            var logOutput: LogWriter.Kept?
            var lastStatus: InstanceStatus?
        }

        private var fields: CopyOnWriteBox<Fields>

        init(configuration: InstanceConfiguration, machine: InstanceStateMachine) {
            fields = CopyOnWriteBox(Fields(configuration: configuration, machine: machine))
        }

        subscript<Value>(dynamicMember field: WritableKeyPath<Fields, Value>) -> Value {
            get { fields.value[keyPath: field] }
            _modify { yield &fields.value[keyPath: field] }
        }
    }

    /// The work of a start that depends only on the configuration, done once for it (a crash loop starts the same
    /// configuration again and again).
    struct PreparedLaunch: Sendable {
        /// What the work depended on: a start whose configuration differs in any of it prepares again.
        struct Basis: Equatable, Sendable {
            var workingDirectory: String
            var logDirectory: String
            var program: String?
            var searchPath: String?

            init(_ configuration: InstanceConfiguration) {
                workingDirectory = configuration.workingDirectory
                logDirectory = configuration.logDirectory
                program = configuration.command.first
                searchPath = configuration.environment["PATH"]
            }
        }

        /// The folders made and the search made for the program (not the whole configuration: that is the entry's).
        var basis: Basis
        /// The command's program, found in the instance's `PATH` when the command first starts (a setup step may be
        /// what creates it).
        var executable: String?
    }

    /// What a loop token stands for.
    enum Registration: Sendable {
        case process(ServiceName, pid: Int32)
        case timer(ServiceName, generation: UInt64)
        case probeSocket(ServiceName, generation: UInt64)
        case probeTimeout(ServiceName, socketToken: UInt64, generation: UInt64)
        /// Reap what exited and no pidfd handler reaps.
        case sweep
    }

    struct State: Sendable {
        var instances: [ServiceName: Entry] = [:]
        var registrations: [UInt64: Registration] = [:]
        var probes: [UInt64: HealthProbeConnection] = [:]
        var subscribers: [Int: AsyncStream<InstanceEvent>.Continuation] = [:]
        /// Whether a sweep is scheduled (SIGCHLDs until then are covered by it).
        var sweepScheduled = false
        var nextSubscriber = 0
        var lifecycle: Lifecycle = .idle
    }

    enum Lifecycle: Sendable {
        case idle
        case running(shutdown: CheckedContinuation<Void, Never>?, requested: Bool)
        case finished
    }

    /// How long a sweep waits after the SIGCHLD that asked for it, gathering the exits of a burst.
    static let sweepDelay: Duration = .milliseconds(50)

    let options: Options
    let logger: Logger
    let loop: ProcessEventLoop
    let state = Mutex(State())
    private let tokens = Atomic<UInt64>(ProcessEventLoop.firstUserToken)

    /// Creates a supervisor; this process becomes a child subreaper so orphaned grandchildren are reaped here.
    public init(options: Options = Options(), logger: Logger) throws(SupervisorError) {
        self.options = options
        self.logger = logger
        ChildReaper.install()
        ProcessSpawner.raiseFileLimit()
        self.loop = try ProcessEventLoop()
    }

    func makeToken() -> UInt64 {
        tokens.wrappingAdd(1, ordering: .relaxed).newValue
    }

    // MARK: Instructions

    /// Makes sure the instance runs with `configuration`.
    ///
    /// A new instance is started. An instance with the same configuration is left as it is (running, on its way,
    /// or FATAL: use ``restart(_:)`` to retry a FATAL one); a stopped one is started again. An instance whose
    /// configuration differs is stopped and started with the new one, which also clears FATAL.
    public func start(_ configuration: InstanceConfiguration) {
        let name = configuration.name
        if state.withLock({ if case .finished = $0.lifecycle { true } else { false } }) {
            logger.error("start after the supervisor stopped; ignored", metadata: ["service": "\(name)"])
            return
        }
        let now = Moment.now()
        let outcome = mutate(name, now: now, create: configuration) { entry in
            if entry.configuration == configuration {
                return entry.machine.start(at: now)
            }
            logger.info(
                "configuration changed; restarting",
                metadata: ["service": "\(name)", "signature": "\(configuration.signature)"])
            entry.configuration = configuration
            return entry.machine.restart(with: configuration.machineParameters, because: .configChange, at: now)
        }
        finish(outcome, name: name)
    }

    /// Restarts the instance deliberately: clears FATAL and the failure count, stops its process if one runs, and
    /// starts it again; `reason` is what its journal and record say (`manual` for `pop restart`).
    public func restart(_ name: ServiceName, because reason: LifecycleEvent.RestartReason = .manual) {
        let now = Moment.now()
        let outcome = mutate(name, now: now) { entry in
            entry.machine.restart(with: entry.configuration.machineParameters, because: reason, at: now)
        }
        finish(outcome, name: name)
    }

    /// Stops the instance and keeps it stopped; returns once its process has exited and its group was killed.
    ///
    /// The stop signal goes to the whole process group; after the stop timeout, SIGKILL follows.
    public func stop(_ name: ServiceName) async {
        await request(name) { entry, now in entry.machine.stop(at: now) }
    }

    /// Stops the instance, then forgets it and deletes its local record; returns once that is done.
    public func remove(_ name: ServiceName) async {
        await request(name) { entry, now in entry.machine.remove(at: now) }
    }

    /// Stops every instance, concurrently; returns once all have stopped.
    public func stopAll() async {
        let names = state.withLock { Array($0.instances.keys) }
        await withTaskGroup(of: Void.self) { group in
            for name in names {
                group.addTask { await self.stop(name) }
            }
        }
    }

    // MARK: Observation

    /// The current status of one instance, or `nil` if it is not supervised.
    public func status(of name: ServiceName) -> InstanceStatus? {
        state.withLock { state in state.instances[name].map { Self.status(name, $0) } }
    }

    /// The current status of every supervised instance, sorted by name.
    public func statuses() -> [InstanceStatus] {
        state.withLock { state in
            state.instances.map { Self.status($0.key, $0.value) }.sorted { $0.name < $1.name }
        }
    }

    /// A stream of every change from now on. Each call returns a new stream; it ends when the supervisor stops.
    public func events() -> AsyncStream<InstanceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: InstanceEvent.self)
        let id = state.withLock { state in
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            if case .finished = state.lifecycle {
                continuation.finish()
            } else {
                state.subscribers[id] = continuation
            }
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    static func status(_ name: ServiceName, _ entry: Entry) -> InstanceStatus {
        InstanceStatus(
            name: name, state: entry.machine.state, pid: entry.machine.pid,
            signature: entry.processSignature ?? entry.configuration.signature, since: entry.machine.since,
            started: entry.machine.started, restarts: entry.machine.restarts, lastError: entry.machine.lastError,
            lastExit: entry.machine.lastExit, healthy: entry.machine.healthy, lastFailure: entry.machine.lastFailure,
            lastRestart: entry.machine.lastRestart)
    }

    // MARK: Service

    /// Runs the event thread until graceful shutdown or cancellation; then, by default, leaves instances running.
    public func run() async throws {
        let alreadyRunning = state.withLock { state -> Bool in
            guard case .idle = state.lifecycle else { return true }
            state.lifecycle = .running(shutdown: nil, requested: false)
            return false
        }
        guard !alreadyRunning else {
            throw SupervisorError(.system, "The supervisor's run() was called twice; a supervisor runs once.")
        }
        logger.info("supervisor started", metadata: ["pid": "\(getpid())"])
        ChildReaper.sweep()
        async let loopFinished: Void = runLoopThread()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await waitForShutdownRequest()
            } onCancel: {
                self.requestShutdown()
            }
        } onGracefulShutdown: {
            self.requestShutdown()
        }
        if options.stopInstancesOnShutdown {
            logger.info("stopping every instance before shutdown")
            await stopAll()
        }
        loop.stop()
        await loopFinished
        release()
        logger.info("supervisor stopped; instances left running will be adopted by the next agent")
    }

    private func runLoopThread() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                loop.run { event in handle(event) }
                continuation.resume()
            }
            thread.name = "pop-supervisor"
            thread.start()
        }
    }

    private func waitForShutdownRequest() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                guard case .running(_, let requested) = state.lifecycle, !requested else { return true }
                state.lifecycle = .running(shutdown: continuation, requested: false)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func requestShutdown() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard case .running(let waiter, _) = state.lifecycle else { return nil }
            state.lifecycle = .running(shutdown: nil, requested: true)
            return waiter
        }
        waiter?.resume()
    }

    /// Lets go of every process handle (the processes keep running) and ends every event stream.
    private func release() {
        let (processes, subscribers, waiters) = state.withLock { state in
            state.lifecycle = .finished
            let processes = state.instances.values.compactMap(\.process)
            var waiters: [CheckedContinuation<Void, Never>] = []
            // Changed in place through the values' indices: iterating the keys while changing the table would
            // copy it.
            var index = state.instances.values.startIndex
            while index != state.instances.values.endIndex {
                state.instances.values[index].process = nil
                state.instances.values[index].logOutput?.pipes.close()
                state.instances.values[index].logOutput = nil
                waiters += state.instances.values[index].stopWaiters
                state.instances.values[index].stopWaiters = []
                state.instances.values.formIndex(after: &index)
            }
            let subscribers = Array(state.subscribers.values)
            state.subscribers = [:]
            for (_, probe) in state.probes {
                var probe = probe
                probe.cancel()
            }
            state.probes = [:]
            return (processes, subscribers, waiters)
        }
        for process in processes {
            close(process.handle)
            ChildReaper.untrack(process.pid)
        }
        for subscriber in subscribers { subscriber.finish() }
        for waiter in waiters { waiter.resume() }
    }
}
