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
    /// Wall time from spawn to exit.
    public var elapsed: Duration

    /// Creates a result.
    public init(arguments: [String], status: Int32, stdout: String, stderr: String, elapsed: Duration = .zero) {
        self.arguments = arguments
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
    }

    /// Whether the command exited 0.
    public var succeeded: Bool { self.status == 0 }

    /// Standard output and standard error together, for checks on words that may be on either.
    public var output: String { self.stdout + self.stderr }

    public var description: String {
        "`\(self.arguments.map(Self.quoted).joined(separator: " "))` exited \(self.status) after \(self.elapsed)\n--- stdout\n\(self.stdout)--- stderr\n\(self.stderr)"
    }

    /// An argument as a shell would need it quoted, for readable messages only (nothing is ever run by a shell).
    public static func quoted(_ argument: String) -> String {
        let plain = !argument.isEmpty && argument.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_./:=,@%+".unicodeScalars.contains($0)
        }
        if plain { return argument }
        return "'" + argument.debugDescription.dropFirst().dropLast().replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Returns self when the command exited 0, else throws an error holding its output.
    @discardableResult
    public func check() throws -> CommandResult {
        guard self.succeeded else { throw ClusterError("command failed: \(self)") }
        return self
    }
}

/// Runs commands to completion with posix_spawn (argv only, never a shell), standard input from /dev/null, their
/// output collected through files (never pipes that could fill up), each waited for on a thread of its own.
public enum CommandRunner {
    /// Runs `argv` with exactly `environment` and waits for it, killing its process group after `timeout`.
    public static func run(
        _ argv: [String], environment: [String: String], scratch: URL, timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        let token = UUID().uuidString
        let stdoutFile = scratch.appendingPathComponent("out-\(token)")
        let stderrFile = scratch.appendingPathComponent("err-\(token)")
        defer {
            try? FileManager.default.removeItem(at: stdoutFile)
            try? FileManager.default.removeItem(at: stderrFile)
        }
        let start = ContinuousClock.now
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
        let elapsed = ContinuousClock.now - start
        return CommandResult(
            arguments: argv, status: status,
            stdout: (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "", elapsed: elapsed)
    }

    /// The environment commands start from: this process's, without pop's own variables, so nothing leaks in.
    static func baseEnvironment() -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("POP_") }
    }
}
