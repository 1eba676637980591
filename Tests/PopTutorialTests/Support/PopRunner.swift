import Foundation
import Testing

/// What one run of the `pop` binary did.
struct PopResult: CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String {
        "pop \(arguments.joined(separator: " ")): exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)"
    }
}

/// Runs the built `pop` binary the way a user would: a private POP_HOME and machine id, and the store options of
/// one tutorial run (none for the embedded store, `--host` for ZooKeeper) after the command's name.
struct PopRunner: Sendable {
    /// The folder holding this runner's POP_HOME and scratch files.
    let base: URL
    /// pop's home (store, agent, instances) for this runner.
    var home: URL { base.appendingPathComponent("home") }
    /// The machine id the CLI and the agent use.
    let machine: String
    /// Options placed right after the command's name, such as `--host 127.0.0.1:PORT`.
    let storeArguments: [String]

    /// Creates a runner with a fresh, private POP_HOME under a temporary folder.
    init(label: String, storeArguments: [String]) throws {
        let unique = UUID().uuidString.prefix(8).lowercased()
        base = FileManager.default.temporaryDirectory.appendingPathComponent("pop-tutorial-\(label)-\(unique)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        machine = "tutorial-\(label)-\(unique)"
        self.storeArguments = storeArguments
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

    /// The environment every `pop` process of this runner gets.
    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["POP_HOME"] = home.path
        env["POP_MACHINE_ID"] = machine
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "POP_HOST")
        env.removeValue(forKey: "POP_AUTH")
        return env
    }

    /// Runs `pop COMMAND STORE-OPTIONS REST...` with standard input from /dev/null and no other inherited
    /// descriptor. A thread of its own waits for the exit, so a long command (a Plone install) holds no thread of
    /// the test pool. (Foundation's Process is not used: it did not notice `pop start` exiting once the agent it
    /// started was running.)
    func run(_ arguments: [String]) async throws -> PopResult {
        var full = arguments
        full.insert(contentsOf: storeArguments, at: min(1, full.count))
        let stdoutFile = base.appendingPathComponent("stdout-\(UUID().uuidString)").path
        let stderrFile = base.appendingPathComponent("stderr-\(UUID().uuidString)").path
        let pid = try ChildProcess.spawn(
            [Self.binary.path] + full, environment: environment, stdout: stdoutFile, stderr: stderrFile)
        let status = await ChildProcess.wait(pid)
        let result = PopResult(
            arguments: full,
            status: status,
            stdout: try String(contentsOfFile: stdoutFile, encoding: .utf8),
            stderr: try String(contentsOfFile: stderrFile, encoding: .utf8))
        try? FileManager.default.removeItem(atPath: stdoutFile)
        try? FileManager.default.removeItem(atPath: stderrFile)
        return result
    }

    /// Runs `pop ARGS` and records a test issue unless it exits 0.
    @discardableResult
    func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> PopResult {
        let result = try await run(arguments)
        #expect(result.status == 0, "\(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Like ``ok(_:sourceLocation:)``, but ends the test when the command fails (later steps depend on it).
    @discardableResult
    func require(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> PopResult {
        let result = try await run(arguments)
        try #require(result.status == 0, "\(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Like ``ok(_:sourceLocation:)``, but ends the test when the command fails (later steps depend on it).
    @discardableResult
    func require(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> PopResult {
        try await require(arguments, sourceLocation: sourceLocation)
    }
}
