import Foundation
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
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["POP_HOME"] = home.path
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "POP_HOST")
        env.removeValue(forKey: "POP_AUTH")
        for (key, value) in environment { env[key] = value }
        for (key, value) in extraEnvironment { env[key] = value }
        process.environment = env
        let stdoutFile = home.deletingLastPathComponent().appendingPathComponent("stdout-\(UUID().uuidString)")
        let stderrFile = home.deletingLastPathComponent().appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: stdoutFile.path, contents: nil)
        FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        let stdoutHandle = try FileHandle(forWritingTo: stdoutFile)
        let stderrHandle = try FileHandle(forWritingTo: stderrFile)
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try stdoutHandle.close()
        try stderrHandle.close()
        let result = PopResult(
            status: process.terminationStatus,
            stdout: try String(contentsOf: stdoutFile, encoding: .utf8),
            stderr: try String(contentsOf: stderrFile, encoding: .utf8))
        try? FileManager.default.removeItem(at: stdoutFile)
        try? FileManager.default.removeItem(at: stderrFile)
        return result
    }

    /// Runs `pop ARGS` and records a test issue unless it exits 0.
    @discardableResult
    func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> PopResult {
        let result = try run(arguments)
        #expect(result.status == 0, "pop \(arguments.joined(separator: " ")) failed:\n\(result)", sourceLocation: sourceLocation)
        return result
    }
}
