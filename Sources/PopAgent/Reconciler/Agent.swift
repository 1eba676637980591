#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import PopState
import ServiceLifecycle

/// The machine agent: keeps this machine at the desired state in the coordination store.
///
/// On ``run()`` it adopts the instances a previous agent left running, opens a store session, registers the machine
/// as an ephemeral node, follows what concerns this machine with persistent watches, and reconciles: it starts what
/// is placed here, stops what is not, restarts what runs an old configuration or was asked to restart, runs `pop run`
/// tasks, and publishes every instance's record. When the store cannot be reached, instances keep running untouched;
/// when the session expires, the agent opens a new one, registers again and reconciles, never duplicating an
/// instance.
///
/// Every decision is taken by one pure state machine (``AgentStateMachine``), which one driver feeds with every event
/// and whose actions it performs (see docs/agent.md).
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
    let memoryRelease = MemoryRelease()
    /// The open session, lent to the scheduler.
    let sessions = SessionLending()
    let diagnostics = AgentDiagnostics()
    /// This machine's lifecycle journals and the figures its endpoint reports, when it keeps them.
    let journal: MachineJournal?
    /// Waits until the agent's endpoint listens and gives its address (published in the machine record), or nil.
    let endpoint: (@Sendable () async -> EndpointAddress?)?

    /// Creates an agent.
    ///
    /// - Parameters:
    ///   - configuration: The machine, paths and behaviour.
    ///   - openStore: Opens a new store session; called at start and again after a session expired.
    ///   - logger: Where the agent logs each decision.
    ///   - journal: Where lifecycle events go (what the supervisor sees happen to each instance, what the agent
    ///     decides and runs, its own start and stop), and the figures its endpoint reports.
    ///   - endpoint: Waits until the agent's endpoint listens and returns its address, which the machine record
    ///     publishes; the machine registers once it is known.
    ///   - onReady: Called once, when the machine is first registered (for `pop start`'s readiness pipe).
    public init(
        configuration: AgentConfiguration, openStore: @escaping @Sendable () async throws -> any CoordinationStore,
        logger: Logger, journal: MachineJournal? = nil, endpoint: (@Sendable () async -> EndpointAddress?)? = nil,
        onReady: @escaping @Sendable (MachineRecord) -> Void = { _ in }
    ) throws(PopError) {
        self.configuration = configuration
        self.openStore = openStore
        self.journal = journal
        self.endpoint = endpoint
        var logger = logger
        logger[metadataKey: "machine"] = "\(configuration.machine)"
        self.logger = logger
        self.onReady = onReady
        do {
            self.supervisor = try Supervisor(
                options: .init(
                    stopInstancesOnShutdown: configuration.stopInstancesOnShutdown,
                    lifecycle: { event in journal?.record(event) }),
                logger: logger)
        } catch {
            throw error.popError
        }
    }

    /// The machine this agent runs.
    public var machine: MachineID { configuration.machine }

    /// How many store events the agent's watches have delivered since it started. For diagnostics and tests.
    public var storeEventsSeen: Int { diagnostics.storeEventsSeen }

    /// What the current session follows in the store, sorted: a node's path, or `PATH/**` for a whole subtree; empty
    /// between sessions. For diagnostics and tests.
    public var followedPaths: [String] { diagnostics.followedPaths }

    /// What the agent observes from now on (the paths it follows, the store events it sees), for diagnostics and
    /// tests. Each call returns a new stream; it ends when ``run()`` ends.
    public func observations() -> AsyncStream<AgentObservation> {
        diagnostics.subscribe()
    }

    /// Runs the agent until graceful shutdown or cancellation.
    ///
    /// Throws when the first store session cannot be opened or the machine cannot be registered (the store is
    /// unreachable, pop's namespace does not exist, another agent runs for this machine); later faults are waited out.
    public func run() async throws {
        defer { diagnostics.finish() }
        try configuration.home.ensurePrivateFolder(configuration.home.instancesFolder(machine))
        let paths = try NamespacePaths(root: configuration.prefix)
        guard configuration.schedules else {
            var driver = AgentDriver(agent: self, paths: paths)
            return try await driver.run()
        }
        // The scheduler stands in its election beside the agent, in the agent's session, and stops with it.
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [configuration, sessions, logger] in
                var scheduler = SchedulerDriver(
                    configuration: configuration, borrowStore: { await sessions.borrow() }, logger: logger, paths: paths)
                await scheduler.run()
            }
            defer { group.cancelAll() }
            var driver = AgentDriver(agent: self, paths: paths)
            try await driver.run()
        }
    }

    /// Whether a process with this pid exists on this host (the agent that registered this machine before).
    static func isAlive(_ pid: Int32) -> Bool {
        ProcessTable.isAlive(pid)
    }
}
