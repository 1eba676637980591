import Foundation
import PopTestSupport
import Testing

/// What one run of the `pop` binary did.
typealias PopResult = CommandResult

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
        do {
            return URL(fileURLWithPath: try PopBinary.locate())
        } catch {
            fatalError("\(error)")
        }
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
        var result = try await CommandRunner.run(
            [Self.binary.path] + arguments, environment: processEnvironment(extraEnvironment), scratch: scratch,
            timeout: .seconds(600))
        result.arguments = arguments
        return result
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
