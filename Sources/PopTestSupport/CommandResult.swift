import Foundation

/// What one finished command did: its exit code and its output.
public struct CommandResult: Sendable, CustomStringConvertible {
    /// The command line, for messages.
    public var arguments: [String]
    /// The exit code, or 128 + the signal that ended the command.
    public var status: Int32
    /// Standard output.
    public var stdout: String
    /// Standard error.
    public var stderr: String

    /// Creates a result.
    public init(arguments: [String], status: Int32, stdout: String, stderr: String) {
        self.arguments = arguments
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// Whether the command exited 0.
    public var succeeded: Bool { self.status == 0 }

    public var description: String {
        "`\(self.arguments.joined(separator: " "))` exited \(self.status)\n--- stdout\n\(self.stdout)--- stderr\n\(self.stderr)"
    }

    /// Returns self when the command exited 0, else throws an error holding its output.
    @discardableResult
    public func check() throws -> CommandResult {
        guard self.succeeded else { throw ClusterError("command failed: \(self)") }
        return self
    }
}

/// Runs short commands to completion, their output collected through files (never pipes that could fill up).
enum CommandRunner {
    /// Runs `argv` with `environment` and waits for it, killing its process group after `timeout`.
    static func run(
        _ argv: [String], environment: [String: String], scratch: URL, timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        let token = UUID().uuidString
        let stdoutFile = scratch.appendingPathComponent("out-\(token)")
        let stderrFile = scratch.appendingPathComponent("err-\(token)")
        defer {
            try? FileManager.default.removeItem(at: stdoutFile)
            try? FileManager.default.removeItem(at: stderrFile)
        }
        let process = try ClusterProcess(argv, environment: environment, stdout: stdoutFile, stderr: stderrFile)
        let status: Int32
        if let finished = await process.waitForExit(timeout: timeout) {
            status = finished
        } else {
            process.signalGroup(SIGKILL)
            await process.waitForExit()
            let stderr = (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? ""
            throw ClusterError("`\(argv.joined(separator: " "))` did not finish within \(timeout) and was killed; stderr:\n\(stderr)")
        }
        return CommandResult(
            arguments: argv, status: status,
            stdout: (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "")
    }

    /// The environment commands start from: this process's, without pop's own variables, so nothing leaks in.
    static func baseEnvironment() -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("POP_") }
    }
}
