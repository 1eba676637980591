import Foundation
import PopState
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What one run of the `pop` binary did.
struct PopResult: CustomStringConvertible, Sendable {
    var arguments: [String]
    var status: Int32
    var stdout: String
    var stderr: String
    /// Wall time from spawn to exit.
    var elapsed: Duration

    /// Standard output and standard error together, for checks on words that may be on either.
    var output: String { stdout + stderr }

    var description: String {
        "pop \(arguments.map(PopResult.quoted).joined(separator: " "))\nexit \(status) after \(elapsed)\n--- stdout\n\(stdout)--- stderr\n\(stderr)"
    }

    /// An argument as a shell would need it quoted, for readable failure messages only.
    static func quoted(_ argument: String) -> String {
        let plain = !argument.isEmpty && argument.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_./:=,@%+".unicodeScalars.contains($0)
        }
        if plain { return argument }
        return "'" + argument.debugDescription.dropFirst().dropLast().replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// Runs the built `pop` binary with a private POP_HOME, the way a user would.
struct PopRunner: Sendable {
    /// The folder holding pop's home (store, agents, instances) for this runner.
    let home: URL
    /// Extra environment, such as POP_HOST or POP_MACHINE_ID.
    var environment: [String: String]

    /// Creates a runner with a fresh, private POP_HOME under a temporary folder.
    init(environment: [String: String] = [:]) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pop-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        home = base.appendingPathComponent("home")
        self.environment = environment
    }

    /// The folder above POP_HOME, private to this runner: scratch files go here.
    var scratch: URL { home.deletingLastPathComponent() }

    /// The `pop` executable next to the test bundle (swift build puts every product in one folder).
    static let binary: URL = {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var folder = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("pop")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        fatalError("The pop binary was not found near \(exe.path); build it first with `swift build`.")
    }()

    /// The environment `pop` runs with: this process's, minus anything that would pick another store or identity.
    func processEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for key in ["POP_HOST", "POP_AUTH", "POP_MACHINE_ID", "POP_PLUGIN_PATH", "XDG_CONFIG_HOME"] {
            env.removeValue(forKey: key)
        }
        env["POP_HOME"] = home.path
        env["NO_COLOR"] = "1"
        // Plugins under the real user's configuration must not leak into tests.
        env["XDG_CONFIG_HOME"] = scratch.appendingPathComponent("config").path
        for (key, value) in environment { env[key] = value }
        for (key, value) in extra { env[key] = value }
        return env
    }

    /// Runs `pop ARGS` and waits for it (without blocking a thread), with standard input from /dev/null.
    @discardableResult
    func callAsFunction(_ arguments: String..., extraEnvironment: [String: String] = [:]) async throws -> PopResult {
        try await run(arguments, extraEnvironment: extraEnvironment)
    }

    /// Runs `pop` with an argument array; standard output and error go to files, so a chatty run cannot block.
    func run(_ arguments: [String], extraEnvironment: [String: String] = [:]) async throws -> PopResult {
        let id = UUID().uuidString
        let stdoutFile = scratch.appendingPathComponent("stdout-\(id)").path
        let stderrFile = scratch.appendingPathComponent("stderr-\(id)").path
        defer {
            try? FileManager.default.removeItem(atPath: stdoutFile)
            try? FileManager.default.removeItem(atPath: stderrFile)
        }
        let start = ContinuousClock.now
        let status = try await ChildProcess.run(
            [Self.binary.path] + arguments, environment: processEnvironment(extraEnvironment), stdout: stdoutFile,
            stderr: stderrFile)
        let elapsed = ContinuousClock.now - start
        return PopResult(
            arguments: arguments, status: status,
            stdout: String(decoding: try Data(contentsOf: URL(fileURLWithPath: stdoutFile)), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: stderrFile)), as: UTF8.self),
            elapsed: elapsed)
    }

    /// Runs `pop ARGS` and records a test issue unless it exits 0.
    @discardableResult
    func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> PopResult {
        let result = try await run(arguments)
        #expect(result.status == 0, "expected success:\n\(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs `pop ARGS` and records a test issue unless it exits with `status` and its standard error mentions
    /// every one of `words` (case-insensitively).
    @discardableResult
    func fails(
        _ status: Int32, _ arguments: [String], mentioning words: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> PopResult {
        let result = try await run(arguments)
        #expect(result.status == status, "expected exit \(status):\n\(result)", sourceLocation: sourceLocation)
        for word in words {
            #expect(
                result.stderr.localizedCaseInsensitiveContains(word), "expected '\(word)' on standard error:\n\(result)",
                sourceLocation: sourceLocation)
        }
        return result
    }
}

/// Starts programs with posix_spawn (argv only, never a shell) and waits for each on a thread of its own.
///
/// Foundation's Process was seen to miss a child's exit when many run at once, leaving a zombie and a test that
/// never ends; waiting for one pid with waitpid cannot miss it, nor reap anyone else's child.
enum ChildProcess {
    /// Runs `argv` with standard input from /dev/null and output into the two files; returns the exit status
    /// (128 + the signal when killed by one).
    static func run(_ argv: [String], environment: [String: String], stdout: String, stderr: String) async throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, argv[0], &actions, nil, cArguments, cEnvironment)
        guard error == 0 else { throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EINVAL) }
        let child = pid
        return await withCheckedContinuation { continuation in
            let waiter = Thread {
                var status: Int32 = 0
                while waitpid(child, &status, 0) < 0 && errno == EINTR {}
                let signal = status & 0x7f
                continuation.resume(returning: signal == 0 ? (status >> 8) & 0xff : 128 + signal)
            }
            waiter.stackSize = 64 * 1024
            waiter.start()
        }
    }
}

extension PopRunner {
    /// Runs `body`, then stops this runner's agent and instances, whether `body` threw or not.
    func withAgentStoppedAfterwards(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            await tearDown()
            throw error
        }
        await tearDown()
    }

    /// Runs `body` with a namespace on the ZooKeeper store `host` names (`connect-string/chroot`), closing it afterwards.
    func withNamespace(host: String, prefix: String, _ body: (PopNamespace) async throws -> Void) async throws {
        let configuration = try StoreConfiguration(
            host: host, prefix: prefix, environment: [:], home: PopHome(path: home.path))
        guard case .zooKeeper(let servers, let chroot) = configuration.kind else {
            preconditionFailure("\(host) names no ZooKeeper store")
        }
        let store = try await ZooKeeperStore.open(servers: servers, chroot: chroot, logger: quietLogger)
        do {
            try await body(try PopNamespace(store: store, prefix: prefix))
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }
}
