import ArgumentParser
import Foundation
import PopState
import PopTestSupport
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

/// `pop-bench status`: wall time of the `pop status` command with 100 services, on the embedded store and on a
/// ZooKeeper server, beside `supervisorctl status` with 100 programs, measured in the same run.
struct StatusBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Measure `pop status` with 100 services on both stores, beside `supervisorctl status` with 100 programs.",
        discussion: """
            Spawns the release `pop` binary (build it first: scripts/build-release.sh) and python3's \
            supervisor (pip install supervisor). Each service uses the command template (sleep 1000) and is \
            deployed to one machine whose agent this benchmark plays, publishing a running instance for each.
            """)

    @Option(help: "Services (and supervisor programs).")
    var services = 100

    @Option(help: "Timed runs of each command (after 3 untimed ones).")
    var runs = 100

    @Option(help: "The pop binary (default: the one beside this benchmark).")
    var pop: String?

    @Flag(help: "Skip the ZooKeeper store.")
    var skipZookeeper = false

    @Flag(help: "Skip supervisorctl.")
    var skipSupervisor = false

    mutating func run() async throws {
        let popPath = pop ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("pop").path
        guard FileManager.default.isExecutableFile(atPath: popPath) else {
            throw ValidationError("No pop binary at \(popPath); build it with `scripts/build-release.sh`.")
        }
        let folder = NSTemporaryDirectory() + "pop-bench-status-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        print("pop: \(popPath)")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(services) services; \(runs) runs each")

        var results: [(String, Timings)] = []
        let embedded = try await measurePop(popPath, environment: ["POP_HOME": folder + "/home"], label: "embedded")
        results.append(("pop status, embedded store", embedded))
        if !skipZookeeper {
            let server = try await ZooKeeperServer.start()
            do {
                let timings = try await measurePop(
                    popPath, environment: ["POP_HOME": folder + "/zk-home", "POP_HOST": server.connectString],
                    label: "ZooKeeper \(server.connectString)")
                results.append(("pop status, ZooKeeper", timings))
                await server.stop()
            } catch {
                await server.stop()
                throw error
            }
        }
        if !skipSupervisor {
            results.append(("supervisorctl status", try await measureSupervisor(folder: folder + "/supervisor")))
        }

        print("")
        print("command                          p50        p90        p99        max")
        for (label, timings) in results {
            print(
                label.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + [0.5, 0.9, 0.99, 1.0].map { String(format: "%8.2f ms", timings.percentile($0)) }.joined(separator: " "))
        }
        // The goals: p50 at most 15 ms on the embedded store (and at least 10× faster than supervisorctl status in
        // the same run), at most 20 ms on ZooKeeper.
        let supervisor = results.first(where: { $0.0.hasPrefix("supervisorctl") })?.1
        for (label, timings) in results where label.hasPrefix("pop") {
            let p50 = timings.percentile(0.5)
            if let supervisor {
                let ratio = supervisor.percentile(0.5) / p50
                print("\(label): " + String(format: "%.1f", ratio) + "× faster than supervisorctl status (p50)")
            }
            let embedded = label.contains("embedded")
            let bound = embedded ? 15.0 : 20.0
            var line = "\(label): p50 " + String(format: "%.2f", p50) + " ms, goal ≤ \(Int(bound)) ms: "
                + (p50 <= bound ? "met" : "NOT met")
            if embedded, let supervisor {
                let ratio = supervisor.percentile(0.5) / p50
                line += "; goal ≥ 10× supervisorctl status: " + (ratio >= 10 ? "met" : "NOT met")
            }
            print(line)
        }
    }

    // MARK: pop

    /// Creates the services with the pop binary, plays the agent of the machine they are deployed to, then times
    /// `pop status`.
    func measurePop(_ popPath: String, environment: [String: String], label: String) async throws -> Timings {
        var env = ProcessInfo.processInfo.environment
        for key in ["POP_HOST", "POP_AUTH", "POP_PLUGIN_PATH"] { env.removeValue(forKey: key) }
        env["NO_COLOR"] = "1"
        env["POP_MACHINE_ID"] = "bench-machine"
        env.merge(environment) { $1 }
        let setupStart = ContinuousClock.now
        try await Spawn.check([popPath, "init"], environment: env)
        for index in 0..<services {
            try await Spawn.check([popPath, "add", "service-\(index)", "--template", "command", "--command", "sleep 1000"], environment: env)
            try await Spawn.check([popPath, "deploy", "service-\(index)", "bench-machine"], environment: env)
        }
        let configuration = try StoreConfiguration(
            host: env["POP_HOST"], prefix: nil, environment: env, home: try PopHome(environment: env))
        let store = try await openStore(configuration)
        do {
            let timings = try await measureStatus(popPath, store: store, environment: env, label: label, setupStart: setupStart)
            await store.close()
            return timings
        } catch {
            await store.close()
            throw error
        }
    }

    /// Publishes a running instance of every service, as the machine's agent would, then times `pop status`.
    func measureStatus(
        _ popPath: String, store: any CoordinationStore, environment env: [String: String], label: String,
        setupStart: ContinuousClock.Instant
    ) async throws -> Timings {
        let namespace = try PopNamespace(store: store)
        let machine = try MachineID("bench-machine")
        try await namespace.registerMachine(
            MachineRecord(
                id: machine, hostname: "bench", addresses: ["127.0.0.1"], agentVersion: "bench", started: Date(),
                agentPID: getpid()))
        for index in 0..<services {
            let name = try ServiceName("service-\(index)")
            let spec = try await namespace.service(name).spec
            try await namespace.publishInstance(
                InstanceRecord(
                    machine: machine, pid: Int32(100_000 + index), signature: spec.signature, state: .running,
                    since: Date(), started: Date()),
                service: name)
        }
        print("\(label): \(services) services added and deployed in \(setupStart.duration(to: .now))")
        let json = try await CommandRunner.run(
            [popPath, "status", "--json"], environment: env, scratch: FileManager.default.temporaryDirectory)
        let report = try StatusReport.decode(try json.check().stdout)
        let running = report.services.flatMap(\.instances).filter { $0.instanceState == .running }.count
        guard running == services else {
            throw ValidationError("pop status --json shows \(running) running instances, not \(services)")
        }
        let output = try await Spawn.output([popPath, "status"], environment: env)
        print("  " + (output.split(separator: "\n").last.map(String.init) ?? ""))
        return try await Timings.measure(runs: runs) { try await Spawn.timed([popPath, "status"], environment: env) }
    }

    // MARK: supervisor

    /// Starts supervisord with `services` programs (sleep 1000), waits until all run, times `supervisorctl status`,
    /// then stops supervisord and kills whatever it left.
    func measureSupervisor(folder: String) async throws -> Timings {
        try FileManager.default.createDirectory(atPath: folder + "/logs", withIntermediateDirectories: true)
        // The interpreter itself, not a version manager's shim, so supervisorctl is timed as its entry point runs.
        let python = try await Spawn.output(
            ["/usr/bin/env", "python3", "-c", "import sys, supervisor; print(sys.executable)"],
            environment: ProcessInfo.processInfo.environment
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        let configFile = folder + "/supervisord.conf"
        var config = """
            [unix_http_server]
            file=\(folder)/supervisor.sock

            [supervisord]
            logfile=\(folder)/supervisord.log
            pidfile=\(folder)/supervisord.pid
            childlogdir=\(folder)/logs
            nodaemon=true

            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

            [supervisorctl]
            serverurl=unix://\(folder)/supervisor.sock

            """
        for index in 0..<services {
            config += """

                [program:service-\(index)]
                command=sleep 1000
                startsecs=0
                autorestart=true
                stdout_logfile=\(folder)/logs/service-\(index).log
                redirect_stderr=true

                """
        }
        try config.write(toFile: configFile, atomically: true, encoding: .utf8)
        let environment = ProcessInfo.processInfo.environment
        let output = URL(fileURLWithPath: folder + "/supervisord.out")
        let supervisord = try ChildProcess(
            [python, "-m", "supervisor.supervisord", "-c", configFile], environment: environment,
            stdout: .file(output, truncate: true), stderr: .file(output))
        do {
            let timings = try await measureSupervisorctl(python: python, configFile: configFile, supervisord: supervisord.pid)
            await Spawn.stopTree(supervisord)
            return timings
        } catch {
            await Spawn.stopTree(supervisord)
            throw error
        }
    }

    /// Waits until supervisord runs every program, then times `supervisorctl status`.
    private func measureSupervisorctl(python: String, configFile: String, supervisord: Int32) async throws -> Timings {
        let environment = ProcessInfo.processInfo.environment
        let ctl = [python, "-m", "supervisor.supervisorctl", "-c", configFile, "status"]
        // supervisord offers no event for "every program is running"; ask until it is, within a bound.
        let deadline = ContinuousClock.now + .seconds(60)
        var last = ""
        while true {
            last = (try? await Spawn.output(ctl, environment: environment, allowFailure: true)) ?? ""
            if last.split(separator: "\n").filter({ $0.contains("RUNNING") }).count == services { break }
            guard ContinuousClock.now < deadline else {
                throw ValidationError("supervisord did not run \(services) programs within 60 s:\n\(last)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        print("supervisord (pid \(supervisord)): \(services) programs RUNNING")
        return try await Timings.measure(runs: runs) { try await Spawn.timed(ctl, environment: environment) }
    }
}

/// Wall times of repeated runs, in milliseconds, sorted.
struct Timings {
    var milliseconds: [Double]

    /// Runs `body` three times untimed, then `runs` times timed.
    static func measure(runs: Int, _ body: () async throws -> Duration) async throws -> Timings {
        for _ in 0..<3 { _ = try await body() }
        var values: [Double] = []
        for _ in 0..<runs { values.append(StoreBenchmark.seconds(try await body()) * 1000) }
        return Timings(milliseconds: values.sorted())
    }

    func percentile(_ p: Double) -> Double {
        milliseconds[min(milliseconds.count - 1, Int(Double(milliseconds.count) * p))]
    }
}

/// Runs programs for the benchmarks through PopTestSupport's ``ChildProcess`` (argv only, never a shell).
enum Spawn {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs a program with its output discarded and returns its run time; a non-zero exit is an error.
    static func timed(_ argv: [String], environment: [String: String]) async throws -> Duration {
        let process = try ChildProcess(argv, environment: environment)
        let status = await process.waitForExit()
        guard status == 0, let elapsed = process.elapsed else {
            throw Failure(description: "\(argv.joined(separator: " ")) exited with \(status)")
        }
        return elapsed
    }

    /// Runs a program and fails unless it exits 0, showing its output.
    static func check(_ argv: [String], environment: [String: String]) async throws {
        _ = try await output(argv, environment: environment)
    }

    /// Runs a program and returns its standard output and error.
    static func output(_ argv: [String], environment: [String: String], allowFailure: Bool = false) async throws -> String {
        let result = try await CommandRunner.run(argv, environment: environment, scratch: FileManager.default.temporaryDirectory)
        guard result.status == 0 || allowFailure else {
            throw Failure(description: "\(argv.joined(separator: " ")) exited with \(result.status):\n\(result.output)")
        }
        return result.output
    }

    /// Stops a program started in its own group and every child it had: SIGTERM and up to 10 s, then SIGKILL.
    static func stopTree(_ process: ChildProcess) async {
        let children = Processes.children(of: process.pid)
        await process.stop(grace: .seconds(10))
        for child in children { kill(child, SIGKILL) }
    }
}
