import ArgumentParser
import Foundation
import PopState
import PopTestSupport
import Synchronization
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
import TestProcesses
#endif

/// `pop-bench agent`: the machine agent end to end, with the release `pop` binary and a real agent per store.
///
/// 1. Deploy→running latency: `pop deploy NAME` is spawned and the time runs until the instance record says
///    `running` (seen through a subtree watch) and its process exists; then `pop undeploy` and a wait until the record
///    and the process are gone. On the embedded store and on a ZooKeeper server the benchmark starts. The same command under
///    supervisord (`supervisorctl start`, startsecs=0) is measured for comparison.
/// 2. Scale: 1,000 services deployed to one agent, from the first deploy to every record `running`; then the
///    agent's resident memory and its CPU use over a minute of idleness.
/// 3. Crash storm: every instance killed at once and crashing at each restart until FATAL; the agent's CPU per
///    start, beside supervisord restarting the same program (AgentBenchmark+Faults.swift).
/// 4. Log flood: one instance writing hundreds of megabytes; the CPU it costs and the log folder's peak size, beside
///    supervisord logging the same program.
struct AgentBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Measure the machine agent: deploy→running latency against supervisord, and 1,000 instances.")

    /// A store the benchmark runs an agent against.
    enum StoreKind: String, ExpressibleByArgument, CaseIterable, Sendable {
        case embedded
        case zookeeper
    }

    @Option(help: "The pop binary (default: `pop` beside this program; build it with `scripts/build-release.sh`).")
    var pop: String?

    @Option(help: "Deploy→running samples per store, plus 3 unmeasured warm-up runs (0 skips them and supervisord).")
    var runs = 50

    @Option(name: .customLong("latency-store"), help: "Stores for the latency runs (repeat the option).")
    var latencyStores: [StoreKind] = [.embedded, .zookeeper]

    @Flag(help: "Skip the supervisord comparison.")
    var skipSupervisor = false

    @Option(help: "Instances for the scale run (0 skips it).")
    var instances = 1000

    @Option(name: .customLong("scale-store"), help: "Stores for the scale run (repeat the option).")
    var scaleStores: [StoreKind] = [.embedded]

    @Option(help: "Seconds of idleness over which the agent's CPU use is measured after the scale run.")
    var idleSeconds = 60

    @Option(help: "Instances in the crash storm, on pop and on supervisord (0 skips it).")
    var storm = 200

    @Option(name: .customLong("log-megabytes"), help: "Megabytes one instance writes in the log flood (0 skips it).")
    var logMegabytes = 300

    @Option(name: .customLong("storm-profile"), help: "Record the agent with `perf record -g` during the crash storm into this file.")
    var stormProfile: String?

    mutating func run() async throws {
        let popPath = try resolvePop()
        // Every instance runs this command; the unique duration lets cleanup find exactly the processes of this run.
        let sleepArgument = "100000.\(Int.random(in: 100_000..<999_999))"
        let command = ["sleep", sleepArgument]
        let cleanup = ProcessSweep(command: command)
        defer { cleanup.killAll() }
        say("pop: \(popPath)")
        say("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; instance command: \(command.joined(separator: " "))")

        // Interrupted runs clean up too: SIGINT and SIGTERM cancel the work, whose error paths stop everything.
        let zooKeeper = ZooKeeperSlot()
        let benchmark = self
        let work = Task { try await benchmark.measureAll(popPath: popPath, command: command, cleanup: cleanup, zooKeeper: zooKeeper) }
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                say("interrupted; cleaning up")
                work.cancel()
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let result = await work.result
        await zooKeeper.stop()
        try result.get()
    }

    fileprivate func measureAll(
        popPath: String, command: [String], cleanup: ProcessSweep, zooKeeper: ZooKeeperSlot
    ) async throws {
        var popMedians: [StoreKind: Double] = [:]
        for kind in latencyStores where runs > 0 {
            let server = kind == .zookeeper ? try await zooKeeper.server() : nil
            let figures = try await BenchEnvironment.with(pop: popPath, kind: kind, zooKeeper: server, label: "latency", sweep: cleanup) {
                try await measureDeployLatency($0, command: command)
            }
            popMedians[kind] = figures.running.percentile(0.5)
        }

        if !skipSupervisor && runs > 0 {
            let supervisor = try await SupervisorBench.start(command: command)
            let started: Samples
            do {
                started = try await supervisor.measureStart(runs: runs)
            } catch {
                await supervisor.tearDown(sweep: cleanup)
                throw error
            }
            await supervisor.tearDown(sweep: cleanup)
            say("supervisord: `supervisorctl start prog` (startsecs=0) until it returns, \(runs) runs:")
            say("  \(started.summary)")
            for (kind, median) in popMedians.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                say(
                    String(
                        format: "  ratio supervisorctl start p50 / pop deploy→running p50 (%@): %.1f×", kind.rawValue,
                        started.percentile(0.5) / median))
            }
        }

        if instances > 0 {
            for kind in scaleStores {
                let server = kind == .zookeeper ? try await zooKeeper.server() : nil
                try await BenchEnvironment.with(pop: popPath, kind: kind, zooKeeper: server, label: "scale", sweep: cleanup) {
                    try await measureScale($0, command: command)
                }
            }
        }

        if storm > 0 {
            let pop = try await BenchEnvironment.with(pop: popPath, kind: .embedded, zooKeeper: nil, label: "storm", sweep: cleanup) {
                try await measureStorm($0, sleep: command[1])
            }
            say("crash storm: \(storm) instances killed at once, each then crashing at start until FATAL (load average \(ProcFile.loadAverage())):")
            say(pop.line("pop agent, embedded store"))
            if !skipSupervisor {
                let supervisor = try await measureSupervisorStorm(sleep: command[1], sweep: cleanup)
                say(supervisor.line("supervisord (autorestart, startsecs=1, startretries=4)"))
                say(String(format: "  ratio supervisord / pop CPU per start: %.1f×", supervisor.perStart / pop.perStart))
            }
        }

        if logMegabytes > 0 {
            let pop = try await BenchEnvironment.with(pop: popPath, kind: .embedded, zooKeeper: nil, label: "flood", sweep: cleanup) {
                try await measureFlood($0, sleep: command[1])
            }
            say("log flood: one instance writes \(logMegabytes) MB in 256 KiB writes (limit 10 MiB per file, 5 kept):")
            say(pop.line("pop"))
            if !skipSupervisor {
                let supervisor = try await measureSupervisorFlood(sleep: command[1], sweep: cleanup)
                say(supervisor.line("supervisord (stdout_logfile_maxbytes=10MB, backups=5)"))
            }
        }
    }

    func resolvePop() throws -> String {
        let path =
            pop
            ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("pop").path
        guard access(path, X_OK) == 0 else {
            throw ValidationError(
                "No pop binary at \(path). Build it first (`scripts/build-release.sh`) or give --pop PATH.")
        }
        return path
    }

    // MARK: Deploy→running

    struct LatencyFigures {
        var running = Samples()
        var command = Samples()
        var both = Samples()
        var placed = Samples()
        var reaction = Samples()
    }

    /// Deploys, waits for the running record, undeploys and waits for the record to go, `runs` times.
    func measureDeployLatency(_ environment: BenchEnvironment, command: [String]) async throws -> LatencyFigures {
        let name = try ServiceName("latency")
        try await environment.pop(["add", name.rawValue, "--template", "command", "--command", command.joined(separator: " ")])
        try await environment.startAgent()
        return try await environment.withNamespace { namespace in
            try await deployLoop(environment, namespace: namespace, service: name)
        }
    }

    fileprivate func deployLoop(_ environment: BenchEnvironment, namespace: PopNamespace, service name: ServiceName)
        async throws -> LatencyFigures
    {
        let events = EventQueue(try await namespace.store.watchSubtree(namespace.paths.service(name)))
        var figures = LatencyFigures()
        for run in 0..<(runs + 3) {
            let sample: DeploySample
            do {
                sample = try await withDeadline(.seconds(30)) {
                    try await Self.deployOnce(environment, namespace: namespace, service: name, events: events)
                }
            } catch let error as BenchError {
                let output = (try? String(contentsOfFile: environment.commandOutput, encoding: .utf8)) ?? ""
                throw BenchError("run \(run): \(error.description); last pop output: \(output)")
            }
            if run >= 3 {
                figures.running.add(sample.running)
                figures.command.add(sample.exited)
                figures.both.add(max(sample.running, sample.exited))
                figures.placed.add(sample.placed)
                figures.reaction.add(sample.running - sample.placed)
            }
        }
        say("pop deploy→running, \(environment.kind.rawValue) store, \(runs) runs (`pop deploy` spawned → record running, process alive):")
        say("  load average before: \(ProcFile.loadAverage())")
        say("  deploy→running:               \(figures.running.summary)")
        say("  `pop deploy` exit:            \(figures.command.summary)")
        say("  both (running and exited):    \(figures.both.summary)")
        say("  placement seen by a watcher:  \(figures.placed.summary)")
        say("  placement → running record:   \(figures.reaction.summary)")
        return figures
    }

    struct DeploySample: Sendable {
        var running: Duration
        var exited: Duration
        var placed: Duration
    }

    /// One deploy, measured, then an undeploy and a wait until both the record and the process are gone.
    static func deployOnce(
        _ environment: BenchEnvironment, namespace: PopNamespace, service name: ServiceName, events: EventQueue
    ) async throws -> DeploySample {
        let instancePath = namespace.paths.instance(name, environment.machine)
        let start = ContinuousClock.now
        let deploy = try environment.spawn(["deploy", name.rawValue])
        let placementPath = namespace.paths.placement(name, environment.machine)
        var placedAt: ContinuousClock.Instant?
        var runningAt: ContinuousClock.Instant?
        var pidfd: Int32 = -1
        while runningAt == nil {
            guard let event = try await events.next() else { throw BenchError("the store's watch ended") }
            if event.path == placementPath, event.kind == .created { placedAt = .now }
            guard event.path == instancePath, event.kind != .deleted else { continue }
            guard let node = try? await namespace.store.get(instancePath) else { continue }
            let record = try PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
            // A pidfd both proves the process exists and later tells when it is gone.
            if record.state == .running, let pid = record.pid {
                pidfd = cpop_pidfd_open(pid)
                guard pidfd >= 0 else { throw BenchError("the running record names pid \(pid), which does not exist") }
                runningAt = .now
            }
        }
        defer { close(pidfd) }
        let deployStatus = await deploy.waitForExit()
        guard deployStatus == 0, let deployExited = deploy.exited else {
            throw BenchError("`pop deploy` exited with \(deployStatus)")
        }

        let undeploy = try environment.spawn(["undeploy", name.rawValue])
        while true {
            guard let event = try await events.next() else { throw BenchError("the store's watch ended") }
            if event.path == instancePath, event.kind == .deleted { break }
        }
        let undeployed = await undeploy.waitForExit()
        guard undeployed == 0 else { throw BenchError("`pop undeploy` exited with \(undeployed)") }
        guard await Pidfd.waitUntilReadable(pidfd, timeoutMilliseconds: 20_000) else {
            throw BenchError("the instance process still runs 20 s after `pop undeploy`")
        }
        guard let placedAt else { throw BenchError("the watch reported no placement for \(name)") }
        return DeploySample(running: runningAt! - start, exited: deployExited - start, placed: placedAt - start)
    }

    // MARK: Scale

    /// Deploys `instances` services to one agent and measures the time to all running, then memory and idle CPU.
    func measureScale(_ environment: BenchEnvironment, command: [String]) async throws {
        let first = try ServiceName(String(format: "scale-%04d", 0))
        try await environment.pop(["add", first.rawValue, "--template", "command", "--command", command.joined(separator: " ")])
        try await environment.withNamespace { namespace in
            try await scaleRun(environment, namespace: namespace, first: first)
        }
    }

    fileprivate func scaleRun(_ environment: BenchEnvironment, namespace: PopNamespace, first: ServiceName) async throws {
        let names = try await Self.addCopies(of: first, count: instances, prefix: "scale", in: namespace)
        let services = names
        let agentPID = try await environment.startAgent()
        let paths = namespace.paths
        let byPath = Dictionary(uniqueKeysWithValues: names.map { (paths.instance($0, environment.machine), $0) })
        let events = try await namespace.store.watchSubtree(paths.services)

        // One task turns events into names to look at; another reads their records in batches.
        let pending = PendingPaths()
        let (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let follower = Task {
            for try await event in events where event.kind != .deleted && byPath[event.path] != nil {
                pending.paths.withLock { _ = $0.insert(event.path) }
                tick.yield()
            }
        }
        defer { follower.cancel() }

        let agentTicksAtStart = try ProcFile.cpuTicks(pid: agentPID)
        let ownTicksAtStart = try ProcFile.cpuTicks(pid: getpid())
        let start = ContinuousClock.now
        let bootAtStart = ProcFile.bootSeconds()
        let deployer = Task {
            for name in services {
                _ = try await namespace.deploy(name, machines: [environment.machine])
            }
            return ContinuousClock.now
        }
        let (allRunning, pids, seen) = try await withDeadline(.seconds(300)) {
            var running: Set<String> = []
            var pids: [Int32] = []
            var seen: [ContinuousClock.Instant] = []
            for await _ in ticks {
                let batch = pending.paths.withLock { paths -> [String] in
                    defer { paths.removeAll() }
                    return Array(paths)
                }
                let results = try await namespace.store.read(batch.map { .get($0) })
                for (path, result) in zip(batch, results) where !running.contains(path) {
                    guard let node = try result.nodeIfExists() else { continue }
                    let record = try PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
                    if record.state == .running, let pid = record.pid {
                        running.insert(path)
                        pids.append(pid)
                        seen.append(ContinuousClock.now)
                    }
                }
                if running.count == services.count { return (ContinuousClock.now, pids, seen) }
            }
            throw BenchError("\(running.count) of \(services.count) instances running when the watch ended")
        }
        let agentBusy = Double(try ProcFile.cpuTicks(pid: agentPID) - agentTicksAtStart) / Double(sysconf(Int32(_SC_CLK_TCK)))
        let ownBusy = Double(try ProcFile.cpuTicks(pid: getpid()) - ownTicksAtStart) / Double(sysconf(Int32(_SC_CLK_TCK)))
        let deployed = try await deployer.value
        follower.cancel()
        let alive = pids.filter { kill($0, 0) == 0 }.count
        say("\(names.count) instances on one agent (pid \(agentPID)), \(environment.kind.rawValue) store:")
        say(
            String(
                format: "  first deploy → all %d records running: %.2f s (the %d deploys themselves took %.2f s); %d processes alive",
                names.count, (allRunning - start).seconds, names.count, (deployed - start).seconds, alive))
        // When the records were seen running: how much started while the deploys were still being written.
        let quarters = [0.1, 0.25, 0.5, 0.75, 0.9].map { fraction in
            String(format: "%.0f%% %.2f s", fraction * 100, (seen[Int(Double(seen.count - 1) * fraction)] - start).seconds)
        }
        say(
            "  running while the deploys were written: \(seen.filter { $0 <= deployed }.count); seen running by "
                + quarters.joined(separator: ", "))
        let clockTick = Double(sysconf(Int32(_SC_CLK_TCK)))
        let started = pids.compactMap { try? ProcFile.startTicks(pid: $0) }.map { Double($0) / clockTick - bootAtStart }
            .sorted()
        if !started.isEmpty {
            let deploySeconds = (deployed - start).seconds
            say(
                "  processes started while the deploys were written: \(started.filter { $0 <= deploySeconds }.count); by "
                    + [0.1, 0.25, 0.5, 0.75, 0.9, 1].map { fraction in
                        String(format: "%.0f%% %.2f s", fraction * 100, started[Int(Double(started.count - 1) * fraction)])
                    }.joined(separator: ", "))
        }

        say(
            String(
                format: "  CPU meanwhile: agent %.2f s, this benchmark (deploys and watch) %.2f s; machine load average %@",
                agentBusy, ownBusy, ProcFile.loadAverage()))
        try sayMemory(of: agentPID, when: "once all are running")

        let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let ticksBefore = try ProcFile.cpuTicks(pid: agentPID)
        let idleStart = ContinuousClock.now
        try await Task.sleep(for: .seconds(idleSeconds))
        let wall = (ContinuousClock.now - idleStart).seconds
        let ticksUsed = Double(try ProcFile.cpuTicks(pid: agentPID) - ticksBefore) / clockTicks
        let stillAlive = pids.filter { kill($0, 0) == 0 }.count
        say(
            String(
                format: "  agent CPU over %.0f s idle: utime+stime %.0f ms = %.3f%%; %d of %d instances still alive",
                wall, ticksUsed * 1000, ticksUsed / wall * 100, stillAlive, pids.count))
        // After a quiet second the agent returns what its work left behind (docs/agent.md): what it keeps while idle.
        try sayMemory(of: agentPID, when: String(format: "after %.0f s idle", wall))
    }

    /// Prints the agent's resident memory from /proc/PID/status.
    private func sayMemory(of agentPID: Int32, when: String) throws {
        let memory = try ProcFile.status(pid: agentPID)
        say(
            "  agent resident memory \(when): VmRSS \(memory["VmRSS"] ?? "?") (anonymous \(memory["RssAnon"] ?? "?"), "
                + "file-backed \(memory["RssFile"] ?? "?")), peak VmHWM \(memory["VmHWM"] ?? "?"), \(memory["Threads"] ?? "?") threads")
    }
}

extension AgentBenchmark {
    /// `first` and `count - 1` services added with its spec (through `PopNamespace.addService`, which is what `pop add`
    /// does, without spawning a process each), named `PREFIX-0001` and on.
    static func addCopies(of first: ServiceName, count: Int, prefix: String, in namespace: PopNamespace) async throws
        -> [ServiceName]
    {
        let spec = try await namespace.service(first).spec
        var names = [first]
        for index in 1..<count {
            let name = try ServiceName(String(format: "\(prefix)-%04d", index))
            try await namespace.addService(ServiceSpec(name: name, template: spec.template, options: spec.options))
            names.append(name)
        }
        return names
    }
}

// MARK: - Environments

/// A pop home, machine id and store for one agent, with the `pop` binary to drive it.
struct BenchEnvironment: Sendable {
    let kind: AgentBenchmark.StoreKind
    let popPath: String
    let home: String
    let machine: MachineID
    let variables: [String: String]

    /// Creates a fresh home and initializes pop's namespace in the store.
    static func make(pop: String, kind: AgentBenchmark.StoreKind, zooKeeper: ZooKeeperServer?, label: String) async throws
        -> BenchEnvironment
    {
        let home = NSTemporaryDirectory() + "pop-bench-agent-\(label)-\(kind.rawValue)-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        var variables = ProcessInfo.processInfo.environment
        variables["POP_HOME"] = home
        let machine = try MachineID("bench-\(label)-\(kind.rawValue)")
        variables["POP_MACHINE_ID"] = machine.rawValue
        variables["NO_COLOR"] = "1"
        variables.removeValue(forKey: "POP_HOST")
        if let zooKeeper { variables["POP_HOST"] = zooKeeper.connectString }
        let environment = BenchEnvironment(kind: kind, popPath: pop, home: home, machine: machine, variables: variables)
        try await environment.pop(["init"])
        return environment
    }

    /// The namespace root: distinct per environment, so two on one ZooKeeper server never meet.
    var prefix: String { kind == .zookeeper ? "/pop-\(machine.rawValue)" : "/pop" }

    /// Where the output of the latest `pop` command goes.
    var commandOutput: String { home + "/.bench-output" }

    /// Spawns `pop ARGS` with this environment's prefix, its output to ``commandOutput``.
    func spawn(_ arguments: [String]) throws -> ChildProcess {
        var arguments = arguments
        arguments.insert(contentsOf: ["--prefix", prefix], at: 1)
        let output = URL(fileURLWithPath: commandOutput)
        return try ChildProcess(
            [popPath] + arguments, environment: variables, stdout: .file(output, truncate: true), stderr: .file(output))
    }

    /// Runs `pop ARGS` (with this environment's prefix) and fails with its output when it exits non-zero.
    @discardableResult
    func pop(_ arguments: [String]) async throws -> String {
        let child = try spawn(arguments)
        let status = await child.waitForExit()
        let text = (try? String(contentsOfFile: commandOutput, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw BenchError("`pop \(arguments.joined(separator: " "))` exited with \(status): \(text)")
        }
        return text
    }

    /// Starts the agent in the background (`pop start`) and returns its pid.
    @discardableResult
    func startAgent() async throws -> Int32 {
        let output = try await pop(["start", "--json"])
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("{") }),
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let pid = object["pid"] as? Int
        else { throw BenchError("`pop start --json` printed no pid: \(output)") }
        return Int32(pid)
    }

    /// Opens this process's own session on the store, in pop's namespace.
    func openNamespace() async throws -> PopNamespace {
        let configuration = try StoreConfiguration(
            host: variables["POP_HOST"], prefix: prefix, environment: variables, home: PopHome(path: home))
        return try await PopState.openNamespace(configuration)
    }

    /// Runs `body` with a fresh environment and always tears it down afterwards.
    static func with<T>(
        pop: String, kind: AgentBenchmark.StoreKind, zooKeeper: ZooKeeperServer?, label: String, sweep: ProcessSweep,
        _ body: (BenchEnvironment) async throws -> T
    ) async throws -> T {
        let environment = try await make(pop: pop, kind: kind, zooKeeper: zooKeeper, label: label)
        do {
            let result = try await body(environment)
            await environment.tearDown(sweep: sweep)
            return result
        } catch {
            await environment.tearDown(sweep: sweep)
            throw error
        }
    }

    /// Runs `body` with a session of this process's own, closed afterwards.
    func withNamespace<T>(_ body: (PopNamespace) async throws -> T) async throws -> T {
        let namespace = try await openNamespace()
        do {
            let result = try await body(namespace)
            await namespace.store.close()
            return result
        } catch {
            await namespace.store.close()
            throw error
        }
    }

    /// Stops the agent (its instances keep running), kills every instance's process group, removes the home.
    func tearDown(sweep: ProcessSweep) async {
        let pidFile = PopHome(path: home).agentPIDFile(machine)
        let agentPID = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if (try? await pop(["stop"])) == nil, let agentPID, agentPID > 0 { kill(agentPID, SIGKILL) }
        sweep.killAll()
        try? FileManager.default.removeItem(atPath: home)
    }
}

/// The ZooKeeper server of a run, started when first needed.
final class ZooKeeperSlot: Sendable {
    private let started = Mutex<ZooKeeperServer?>(nil)

    func server() async throws -> ZooKeeperServer {
        if let server = started.withLock({ $0 }) { return server }
        let server = try await ZooKeeperServer.start()
        started.withLock { $0 = server }
        say("ZooKeeper: \(server.connectString)")
        return server
    }

    func stop() async {
        await started.withLock({ $0 })?.stop()
    }
}

/// Instance record paths a subtree watch reported, waiting to be read.
final class PendingPaths: Sendable {
    let paths = Mutex<Set<String>>([])
}

// MARK: - supervisord

/// supervisord with one program running the same command, controlled over a unix socket in a temporary folder.
struct SupervisorBench: Sendable {
    let folder: String
    let python: String
    let configFile: String
    let daemon: ChildProcess

    /// supervisord with one program, `prog`, running `command` when asked (autostart=false, startsecs=0).
    static func start(command: [String]) async throws -> SupervisorBench {
        try await start { folder in
            """
            [program:prog]
            command=\(command.joined(separator: " "))
            autostart=false
            autorestart=false
            startsecs=0
            stopasgroup=true
            killasgroup=true
            stdout_logfile=\(folder)/prog.log
            redirect_stderr=true
            """
        }
    }

    /// supervisord with the program sections `programs(folder)` returns.
    static func start(programs: (String) -> String) async throws -> SupervisorBench {
        let folder = NSTemporaryDirectory() + "pop-bench-supervisord-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        do {
            return try await launch(folder: folder, programs: programs(folder))
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    private static func launch(folder: String, programs: String) async throws -> SupervisorBench {
        // The interpreter itself, not a version-manager shim, so supervisorctl is not charged for the shim.
        let probeOutput = folder + "/python"
        let probe = try ChildProcess(
            ["python3", "-c", "import sys, supervisor; print(sys.executable)"], environment: ProcessInfo.processInfo.environment,
            stdout: .file(URL(fileURLWithPath: probeOutput), truncate: true), stderr: .file(URL(fileURLWithPath: probeOutput)))
        guard await probe.waitForExit() == 0 else {
            throw BenchError("python3 with the supervisor package is needed for the comparison (or pass --skip-supervisor)")
        }
        let python = try String(contentsOfFile: probeOutput, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let configFile = folder + "/supervisord.conf"
        let config = """
            [unix_http_server]
            file=\(folder)/supervisor.sock

            [supervisord]
            logfile=\(folder)/supervisord.log
            pidfile=\(folder)/supervisord.pid
            childlogdir=\(folder)
            nodaemon=true

            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

            [supervisorctl]
            serverurl=unix://\(folder)/supervisor.sock

            \(programs)

            """
        try config.write(toFile: configFile, atomically: true, encoding: .utf8)
        let daemonOutput = URL(fileURLWithPath: folder + "/supervisord.out")
        let daemon = try ChildProcess(
            [python, "-m", "supervisor.supervisord", "-c", configFile], environment: ProcessInfo.processInfo.environment,
            stdout: .file(daemonOutput, truncate: true), stderr: .file(daemonOutput))
        let bench = SupervisorBench(folder: folder, python: python, configFile: configFile, daemon: daemon)
        // Setup only: supervisord has no readiness signal, so ask until its socket answers.
        for _ in 0..<100 {
            if (try? await bench.control(["pid"])) != nil { return bench }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let log = (try? String(contentsOfFile: folder + "/supervisord.out", encoding: .utf8)) ?? ""
        kill(daemon.pid, SIGTERM)
        await daemon.waitForExit()
        throw BenchError("supervisord did not answer on its socket within 10 s: \(log)")
    }

    /// Runs `supervisorctl ARGS`; fails when it exits non-zero.
    @discardableResult
    func control(_ arguments: [String]) async throws -> String {
        let output = folder + "/ctl.out"
        let child = try ChildProcess(
            [python, "-m", "supervisor.supervisorctl", "-c", configFile] + arguments,
            environment: ProcessInfo.processInfo.environment, stdout: .file(URL(fileURLWithPath: output), truncate: true),
            stderr: .file(URL(fileURLWithPath: output)))
        let status = await child.waitForExit()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw BenchError("supervisorctl \(arguments.joined(separator: " ")): \(text)") }
        return text
    }

    /// `supervisorctl start prog` until it returns (RUNNING, with startsecs=0), then a stop; 3 warm-up runs first.
    func measureStart(runs: Int) async throws -> Samples {
        var samples = Samples()
        for run in 0..<(runs + 3) {
            let start = ContinuousClock.now
            let output = try await control(["start", "prog"])
            let end = ContinuousClock.now
            guard output.contains("started") else { throw BenchError("supervisorctl start prog: \(output)") }
            if run >= 3 { samples.add(end - start) }
            try await control(["stop", "prog"])
        }
        return samples
    }

    func tearDown(sweep: ProcessSweep) async {
        kill(daemon.pid, SIGTERM)
        await daemon.waitForExit()
        sweep.killAll()
        try? FileManager.default.removeItem(atPath: folder)
    }
}

// MARK: - Processes

/// Waiting on a pidfd the benchmark holds.
enum Pidfd {
    /// Waits (on a thread of its own) until `descriptor` is readable, as a pidfd is once its process has exited.
    static func waitUntilReadable(_ descriptor: Int32, timeoutMilliseconds: Int32) async -> Bool {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                var ready: Int32
                repeat { ready = poll(&entry, 1, timeoutMilliseconds) } while ready == -1 && errno == EINTR
                continuation.resume(returning: ready == 1)
            }
            thread.start()
        }
    }
}

/// Finds the processes running this run's instance command and kills their process groups.
struct ProcessSweep: Sendable {
    let command: [String]

    func killAll() {
        let wanted = Array((command.joined(separator: "\0") + "\0").utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), pid > 1,
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), Array(cmdline) == wanted
            else { continue }
            let group = getpgid(pid)
            if group > 1, group != getpgrp() { kill(-group, SIGKILL) } else { kill(pid, SIGKILL) }
        }
    }
}

/// Readings from /proc.
enum ProcFile {
    /// The `Key: value` lines of /proc/PID/status.
    static func status(pid: Int32) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// The 1, 5 and 15 minute load averages.
    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// utime + stime of every thread, in clock ticks (fields 14 and 15 of /proc/PID/stat).
    /// When the process started, in clock ticks since boot.
    static func startTicks(pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return Int(fields[19]) ?? 0
    }

    /// Seconds since boot (CLOCK_BOOTTIME, the clock of a process's start time).
    static func bootSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    static func cpuTicks(pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    /// The host's busy CPU time over all cores (everything but idle and iowait), in clock ticks, from /proc/stat.
    static func hostBusyTicks() -> Int {
        let text = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return 0 }
        let values = line.split(separator: " ").dropFirst().compactMap { Int($0) }
        guard values.count >= 5 else { return 0 }
        return values.reduce(0, +) - values[3] - values[4]
    }
}

// MARK: - Helpers

/// Prints a line at once (stdout may be a pipe, where `print` would hold it back).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Runs `body` in a task of its own that is cancelled after `limit`; then fails with a timeout.
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let work = Task { try await body() }
    let watchdog = Task {
        try await Task.sleep(for: limit)
        work.cancel()
    }
    defer { watchdog.cancel() }
    do {
        return try await work.value
    } catch {
        if work.isCancelled { throw BenchError("no result within \(limit) (\(error))") }
        throw error
    }
}

/// A subtree watch read by one task at a time, across the tasks of successive runs.
final class EventQueue: @unchecked Sendable {
    private var iterator: NodeEvents.AsyncIterator

    init(_ events: NodeEvents) {
        iterator = events.makeAsyncIterator()
    }

    func next() async throws -> NodeEvent? {
        try await iterator.next()
    }
}

// MARK: - Figures

/// Durations in milliseconds, with percentiles.
struct Samples: Sendable {
    private(set) var values: [Double] = []

    mutating func add(_ duration: Duration) { values.append(duration.seconds * 1000) }

    func percentile(_ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    var summary: String {
        String(
            format: "p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  min %.1f ms  max %.1f ms", percentile(0.5), percentile(0.9),
            percentile(0.99), values.min() ?? .nan, values.max() ?? .nan)
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A benchmark step that went wrong.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
