import Foundation
import PopTestSupport
import Testing

/// What one run of the `pop` binary did.
typealias PopResult = CommandResult

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
        do {
            return URL(fileURLWithPath: try PopBinary.locate())
        } catch {
            fatalError("\(error)")
        }
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
    /// the test pool.
    func run(_ arguments: [String]) async throws -> PopResult {
        var full = arguments
        full.insert(contentsOf: storeArguments, at: min(1, full.count))
        var result = try await CommandRunner.run(
            [Self.binary.path] + full, environment: environment, scratch: base, timeout: .seconds(1200))
        result.arguments = full
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
