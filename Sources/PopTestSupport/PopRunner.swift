import Foundation
import PopState
import TestProcesses

/// Runs the built `pop` binary the way a user would: a private POP_HOME, this runner's environment, and nothing
/// inherited that would pick another store or identity.
public struct PopRunner: Sendable {
    /// The folder holding this runner's POP_HOME and scratch files; removed by ``removeFolder()``.
    public let base: URL
    /// Extra environment, such as POP_HOST, POP_MACHINE_ID or POP_PLUGIN_PATH.
    public var environment: [String: String]
    /// Arguments placed right after the command's name, such as `--host 127.0.0.1:PORT`.
    public var argumentsAfterCommand: [String]

    /// Creates a runner with a fresh, private POP_HOME in a new temporary folder named after `label`.
    public init(label: String = "cli", environment: [String: String] = [:], argumentsAfterCommand: [String] = []) throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pop-\(label)-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        self.environment = environment
        self.argumentsAfterCommand = argumentsAfterCommand
    }

    /// Runs `body` with a new runner (see ``init(label:environment:argumentsAfterCommand:)``) and removes the runner's
    /// folder once `body` has returned or thrown. A test that starts an agent stops it inside `body`.
    public static func with<T>(
        label: String = "cli", environment: [String: String] = [:], argumentsAfterCommand: [String] = [],
        _ body: (PopRunner) async throws -> T
    ) async throws -> T {
        let runner = try PopRunner(label: label, environment: environment, argumentsAfterCommand: argumentsAfterCommand)
        do {
            let result = try await body(runner)
            runner.removeFolder()
            return result
        } catch {
            runner.removeFolder()
            throw error
        }
    }

    /// pop's home (store, agents, instances) for this runner.
    public var home: URL { base.appendingPathComponent("home") }

    /// Scratch files go here, beside POP_HOME.
    public var scratch: URL { base }

    /// The machine id the runner's commands use (POP_MACHINE_ID), if it sets one.
    public var machine: String? { environment["POP_MACHINE_ID"] }

    /// The `pop` executable: `POP_BINARY`, else the one next to this test or benchmark binary.
    public static func binary() throws -> String {
        try PopBinary.locate()
    }

    /// The environment `pop` runs with: this process's without pop's own variables or the user's configuration,
    /// then POP_HOME, NO_COLOR, the runner's environment and `extra`.
    public func processEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = CommandRunner.baseEnvironment()
        environment["POP_HOME"] = home.path
        environment["NO_COLOR"] = "1"
        // Plugins and credentials under the real user's configuration must not leak in.
        environment["XDG_CONFIG_HOME"] = base.appendingPathComponent("config").path
        for (key, value) in self.environment { environment[key] = value }
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Runs `pop COMMAND [argumentsAfterCommand] REST...` and waits for it (on a thread of its own, not the task
    /// pool), killing it after `timeout`.
    public func run(
        _ arguments: [String], extraEnvironment: [String: String] = [:], timeout: Duration = .seconds(600)
    ) async throws -> CommandResult {
        var full = arguments
        full.insert(contentsOf: argumentsAfterCommand, at: min(1, full.count))
        return try await CommandRunner.run(
            [try Self.binary()] + full, environment: processEnvironment(extraEnvironment), scratch: scratch,
            timeout: timeout, shown: ["pop"] + full)
    }

    /// Runs `pop ARGS`.
    @discardableResult
    public func callAsFunction(_ arguments: String..., extraEnvironment: [String: String] = [:]) async throws -> CommandResult {
        try await run(arguments, extraEnvironment: extraEnvironment)
    }

    /// `pop status --json` (with `arguments`), decoded; throws when it fails.
    public func statusReport(_ arguments: [String] = []) async throws -> StatusReport {
        let result = try await run(["status", "--json"] + arguments).check()
        return try StatusReport.decode(result.stdout)
    }

    /// Removes the runner's folder (its POP_HOME and scratch files).
    public func removeFolder() {
        try? FileManager.default.removeItem(at: base)
    }
}
