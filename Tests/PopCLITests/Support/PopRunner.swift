import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// What one run of the `pop` binary did.
struct PopResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
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

    /// Runs `pop ARGS` and waits for it, with standard input from /dev/null.
    @discardableResult
    func callAsFunction(_ arguments: String..., extraEnvironment: [String: String] = [:]) throws -> PopResult {
        try run(arguments, extraEnvironment: extraEnvironment)
    }

    /// Runs `pop` with an argument array.
    func run(_ arguments: [String], extraEnvironment: [String: String] = [:]) throws -> PopResult {
        var env = ProcessInfo.processInfo.environment
        env["POP_HOME"] = home.path
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "POP_HOST")
        env.removeValue(forKey: "POP_AUTH")
        for (key, value) in environment { env[key] = value }
        for (key, value) in extraEnvironment { env[key] = value }
        let stdoutFile = home.deletingLastPathComponent().appendingPathComponent("stdout-\(UUID().uuidString)")
        let stderrFile = home.deletingLastPathComponent().appendingPathComponent("stderr-\(UUID().uuidString)")
        // posix_spawn and waitpid rather than Foundation's Process, whose waitUntilExit can miss the exit of a
        // child that leaves a daemon behind (`pop start`).
        let status = try Self.spawnAndWait(
            Self.binary.path, arguments: arguments, environment: env, stdout: stdoutFile.path, stderr: stderrFile.path)
        let result = PopResult(
            status: status,
            stdout: try String(contentsOf: stdoutFile, encoding: .utf8),
            stderr: try String(contentsOf: stderrFile, encoding: .utf8))
        try? FileManager.default.removeItem(at: stdoutFile)
        try? FileManager.default.removeItem(at: stderrFile)
        return result
    }

    /// Runs a program with its output in files and waits for it; returns its exit code (128+N for signal N).
    static func spawnAndWait(
        _ path: String, arguments: [String], environment: [String: String], stdout: String, stderr: String
    ) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw PopRunnerError(message: "could not start \(path): error \(spawned)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs `pop ARGS` and records a test issue unless it exits 0.
    @discardableResult
    func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> PopResult {
        let result = try run(arguments)
        #expect(result.status == 0, "pop \(arguments.joined(separator: " ")) failed:\n\(result)", sourceLocation: sourceLocation)
        return result
    }
}

struct PopRunnerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
