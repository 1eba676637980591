#if canImport(Glibc)
import Glibc
#endif
import CPopAgentLinux
import Foundation
import Logging
import PopAgent
import PopState
import Synchronization
import TestProcesses
import Testing

/// Runs `body` with a temporary pop home holding an embedded store with pop's namespace, then tears it down before
/// returning, whether `body` succeeded or threw: every instance process an agent left running is killed and waited
/// for, every store handle closed, the folder removed.
func withAgentFixture<T>(machine: String = "m1", _ body: (AgentFixture) async throws -> T) async throws -> T {
    let fixture = try await AgentFixture(machine: machine)
    let result: T
    do {
        result = try await body(fixture)
    } catch {
        await fixture.tearDown()
        throw error
    }
    await fixture.tearDown()
    return result
}

/// A temporary pop home with an embedded store, a CLI-side namespace, and agents run in-process (see
/// ``withAgentFixture(machine:_:)``).
final class AgentFixture: Sendable {
    let folder: String
    let home: PopHome
    let machine: MachineID
    let namespace: PopNamespace
    /// Every store handle the agents opened, newest last.
    let agentStores = Mutex<[any CoordinationStore]>([])

    /// How long a wait may take before the test fails: it separates "slow" from "never" (a loaded 2-core machine has
    /// taken over 20 s to run a task an idle one runs in milliseconds).
    static let timeout: Duration = .seconds(60)

    fileprivate init(machine: String) async throws {
        folder = NSTemporaryDirectory() + "pop-agent-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        home = PopHome(path: folder)
        self.machine = try MachineID(machine)
        let store = try await EmbeddedStore.open(folder: home.storeFolder, options: Self.storeOptions())
        namespace = try PopNamespace(store: store)
        try await namespace.initialize(force: false)
    }

    static func storeOptions(sessionTimeout: Duration = .seconds(3)) -> EmbeddedStore.Options {
        var logger = Logger(label: "pop.store.test")
        logger.logLevel = .critical
        return EmbeddedStore.Options(sessionTimeout: sessionTimeout, logger: logger)
    }

    var store: any CoordinationStore { namespace.store }

    // MARK: Agents

    /// An agent for `machine` (this fixture's by default), not running yet.
    ///
    /// It follows only what concerns its machine, as on ZooKeeper, unless `followsWholeNamespace` says otherwise
    /// (`nil`: the embedded store's default, one subtree watch).
    func makeAgent(
        machine: MachineID? = nil, stopInstancesOnShutdown: Bool = false, followsWholeNamespace: Bool? = false,
        restartPolicy: RestartPolicy = RestartPolicy(initialBackoffMilliseconds: 50, maximumQuickFailures: 3)
    ) throws -> Agent {
        var logger = Logger(label: "pop.agent.test")
        logger.logLevel = ProcessInfo.processInfo.environment["POP_TEST_LOG"] == nil ? .critical : .debug
        var configuration = AgentConfiguration(
            machine: machine ?? self.machine, home: home,
            environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": folder, "LANG": "C.UTF-8"],
            agentVersion: "test", stopInstancesOnShutdown: stopInstancesOnShutdown, restartPolicy: restartPolicy)
        configuration.followsWholeNamespace = followsWholeNamespace
        let folder = home.storeFolder
        return try Agent(
            configuration: configuration,
            openStore: { [self] in
                let store = try await EmbeddedStore.open(folder: folder, options: AgentFixture.storeOptions())
                self.agentStores.withLock { $0.append(store) }
                return store
            }, logger: logger)
    }

    /// Runs `body` beside a running agent, then stops the agent and waits for it to end. When the agent stops first
    /// (its first session failed), that error is thrown and `body` is cancelled.
    func withAgent<T: Sendable>(
        machine: MachineID? = nil, stopInstancesOnShutdown: Bool = false, followsWholeNamespace: Bool? = false,
        _ body: @escaping @Sendable (Agent) async throws -> T
    ) async throws -> T {
        let agent = try makeAgent(
            machine: machine, stopInstancesOnShutdown: stopInstancesOnShutdown,
            followsWholeNamespace: followsWholeNamespace)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await agent.run()
                return nil
            }
            group.addTask { try await body(agent) }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw PopError(.system, "The agent of \(agent.machine) stopped before the test was done with it.")
            }
            group.cancelAll()
            try await group.waitForAll()
            return value
        }
    }

    // MARK: Services

    /// A service running `command`, with an option `greeting` and a few tasks.
    static func spec(_ name: String, command: [String] = ["sleep", "300"], greeting: String = "hello") throws -> ServiceSpec {
        let template = ResolvedTemplate(
            name: "command", options: [TemplateOption(name: "greeting", type: .string, defaultValue: .string("hello"))],
            command: command, stopTimeoutMilliseconds: 2000,
            tasks: [
                TemplateTask(name: "show", command: ["printf", "%s\n", "{args}"]),
                TemplateTask(name: "env", command: ["printenv", "POP_SERVICE", "POP_MACHINE", "POP_OPTION_GREETING"]),
                TemplateTask(name: "fail", command: ["false"]),
                TemplateTask(name: "install", command: ["printf", "installing %s\n", "{args}"], recordsPackages: true),
            ])
        return ServiceSpec(name: try ServiceName(name), template: template, options: ["greeting": .string(greeting)])
    }

    /// Adds and deploys a service on this fixture's machine.
    @discardableResult
    func deploy(_ spec: ServiceSpec, on machines: [MachineID]? = nil) async throws -> ServiceName {
        try await namespace.addService(spec)
        try await namespace.deploy(spec.name, machines: machines ?? [machine])
        return spec.name
    }

    // MARK: Waiting

    /// Waits (on the store's subtree watch, not by polling) until `condition` holds; returns its value. Fails the
    /// test when `timeout` passes first, whether or not anything happens meanwhile.
    func wait<T: Sendable>(
        _ what: String, timeout: Duration = AgentFixture.timeout, _ condition: @escaping @Sendable () async throws -> T?
    ) async throws -> T {
        let events = try await store.watchSubtree(namespace.prefix)
        return try await Self.within(timeout, what) {
            if let value = try await condition() { return value }
            for try await _ in events {
                if let value = try await condition() { return value }
            }
            return nil
        }
    }

    /// Waits for the first of an agent's observations that `accept` takes, beside `then` (which makes it happen);
    /// returns the observations before it. Fails the test when `timeout` passes first.
    func observe(
        _ agent: Agent, _ what: String, timeout: Duration = AgentFixture.timeout,
        until accept: @escaping @Sendable (AgentObservation) -> Bool,
        then act: @Sendable () async throws -> Void = {}
    ) async throws -> [AgentObservation] {
        let observations = agent.observations()
        try await act()
        return try await Self.next(in: observations, what, timeout: timeout, until: accept)
    }

    /// Waits for the next observation in `observations` that `accept` takes; returns the observations before it.
    /// Fails the test when `timeout` passes first. The stream can be waited on again afterwards.
    static func next(
        in observations: AsyncStream<AgentObservation>, _ what: String, timeout: Duration = AgentFixture.timeout,
        until accept: @escaping @Sendable (AgentObservation) -> Bool
    ) async throws -> [AgentObservation] {
        try await within(timeout, what) {
            var before: [AgentObservation] = []
            for await observation in observations {
                if accept(observation) { return before }
                before.append(observation)
            }
            return nil
        }
    }

    /// Waits until every one of `conditions` has taken some observation in `observations`, in any order. Fails the
    /// test when `timeout` passes first.
    static func seen(
        in observations: AsyncStream<AgentObservation>, _ what: String, timeout: Duration = AgentFixture.timeout,
        _ conditions: [@Sendable (AgentObservation) -> Bool]
    ) async throws {
        _ = try await within(timeout, what) { () -> Bool? in
            var waiting = conditions
            for await observation in observations {
                waiting.removeAll { $0(observation) }
                if waiting.isEmpty { return true }
            }
            return nil
        }
    }

    /// Runs `body` for at most `timeout`; records an issue and throws when it passes first, or when `body` ends
    /// without a value.
    static func within<T: Sendable>(
        _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T?
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask(operation: body)
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                Issue.record("Timed out after \(timeout) waiting for \(what).")
                throw CancellationError()
            }
            return value
        }
    }

    /// This machine's instance record of `service`, or `nil`.
    func record(_ service: ServiceName, machine: MachineID? = nil) async throws -> InstanceRecord? {
        try await namespace.instances(service)[machine ?? self.machine]
    }

    /// Waits for a record that satisfies `accept`.
    func waitForRecord(
        _ service: ServiceName, machine: MachineID? = nil, _ what: String, timeout: Duration = AgentFixture.timeout,
        _ accept: @escaping @Sendable (InstanceRecord) -> Bool
    ) async throws -> InstanceRecord {
        try await wait("\(service) \(what)", timeout: timeout) {
            guard let record = try await self.record(service, machine: machine), accept(record) else { return nil }
            return record
        }
    }

    /// Waits until the instance runs, and returns its record.
    func waitForRunning(
        _ service: ServiceName, machine: MachineID? = nil, timeout: Duration = AgentFixture.timeout
    ) async throws -> InstanceRecord {
        try await waitForRecord(service, machine: machine, "running", timeout: timeout) {
            $0.state == .running && $0.pid != nil
        }
    }

    /// Waits until this machine has no record of `service`.
    func waitForNoRecord(_ service: ServiceName) async throws {
        _ = try await wait("\(service)'s record to be deleted") { try await self.record(service) == nil ? true : nil }
    }

    /// Waits for a task's final result from `machine`.
    func waitForResult(_ service: ServiceName, _ id: TaskID, machine: MachineID? = nil) async throws -> TaskResult {
        let machine = machine ?? self.machine
        return try await wait("result of \(id)") {
            guard let result = try await self.namespace.taskResults(service, id)[machine], result.state != .running
            else { return nil }
            return result
        }
    }

    // MARK: Processes

    /// The processes whose process group is `group` (zombies excluded).
    static func members(ofGroup group: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && fields[0] != "Z" && Int32(fields[2]) == group
        }
    }

    /// Waits (on pidfds, on a thread of its own) until every process in `pids` has exited; returns whether they all
    /// did in time.
    static func waitForExit(_ pids: [Int32], timeout: Duration = .seconds(15)) async -> Bool {
        await onThread {
            let deadline = ContinuousClock.now + timeout
            for pid in pids {
                let fd = cpop_pidfd_open(pid)
                guard fd >= 0 else { continue }  // already gone
                defer { close(fd) }
                if !poll(fd, until: deadline) { return false }
            }
            return true
        }
    }

    /// Waits (on a thread of its own) until a line is written to the FIFO at `path`: the sentinel a test's command
    /// writes once it has done what the test waits for. Returns whether it came within `timeout`.
    static func waitForSentinel(_ path: String, timeout: Duration = AgentFixture.timeout) async -> Bool {
        await onThread {
            // Non-blocking, so opening needs no writer; poll reports the first write (no hang-up before a writer came).
            let fd = open(path, O_RDONLY | O_NONBLOCK)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return poll(fd, until: ContinuousClock.now + timeout)
        }
    }

    /// Creates a FIFO for ``waitForSentinel(_:timeout:)``.
    func makeSentinel(_ name: String) throws -> String {
        let path = folder + "/" + name
        guard mkfifo(path, 0o600) == 0 else { throw PopError(.system, "Could not create the FIFO \(path).") }
        return path
    }

    private static func poll(_ fd: Int32, until deadline: ContinuousClock.Instant) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let remaining = deadline - ContinuousClock.now
        let milliseconds = max(0, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
        return Glibc.poll(&descriptor, 1, milliseconds) == 1
    }

    /// Runs blocking `work` on a thread of its own, so that it holds none of the cooperative pool's few threads.
    private static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: work()) }.start()
        }
    }

    // MARK: Teardown

    /// Kills every instance process group the agents left running and waits for them to exit, closes every store
    /// handle, and removes the folder.
    ///
    /// The processes are found by what names them for good: a local record's pid together with its start time, and
    /// the instance folder in a process's environment. A recorded pid alone may belong to another test's process by
    /// now (the kernel reuses pids, and this host allows only 32,768), and killing its group would kill that test's
    /// instance.
    fileprivate func tearDown() async {
        var leaders: Set<Int32> = []
        let instances = home.path + "/machines"
        if let enumerator = FileManager.default.enumerator(atPath: instances) {
            for case let path as String in enumerator where path.hasSuffix(".pop/instance.json") {
                if let data = FileManager.default.contents(atPath: instances + "/" + path),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let pid = (object["pid"] as? Int).map(Int32.init),
                    let started = object["processStartTime"] as? Int,
                    Processes.startTime(pid) == UInt64(started)
                {
                    leaders.insert(pid)
                }
            }
        }
        leaders.formUnion(Processes.withEnvironment(startingWith: ["POP_INSTANCE_DIR=\(instances)/"]))
        for pid in leaders {
            // An instance leads its own process group: take its background children with it.
            if getpgid(pid) == pid { kill(-pid, SIGKILL) } else { kill(pid, SIGKILL) }
        }
        if !(await Self.waitForExit(Array(leaders))) {
            Issue.record("Instance processes \(leaders) did not exit after SIGKILL.")
        }
        for store in agentStores.withLock({ $0 }) { await store.close() }
        await store.close()
        try? FileManager.default.removeItem(atPath: folder)
    }
}
