import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What one finished command did: its exit code, its output and how long it ran.
public struct CommandResult: Sendable, CustomStringConvertible {
    /// The command line, for messages.
    public var arguments: [String]
    /// The exit code, or 128 + the signal that ended the command.
    public var status: Int32
    /// Standard output.
    public var stdout: String
    /// Standard error.
    public var stderr: String
    /// How long the program ran, from its start to the moment its exit was seen (``ChildProcess/elapsed``).
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
        "`\(self.arguments.map(Self.quoted).joined(separator: " "))` exited \(self.status) after \(self.elapsed)\n"
            + "--- stdout\n\(self.stdout)--- stderr\n\(self.stderr)"
    }

    /// An argument as a shell would need it quoted, for readable messages only (nothing is ever run by a shell).
    public static func quoted(_ argument: String) -> String {
        let plain = !argument.isEmpty && argument.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_./:=,@%+{}".unicodeScalars.contains($0)
        }
        if plain { return argument }
        return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Returns self when the command exited 0, else throws an error holding its output.
    @discardableResult
    public func check() throws -> CommandResult {
        guard self.succeeded else { throw ProcessError("command failed: \(self)") }
        return self
    }
}

/// Runs commands to completion, their output collected through files (never pipes that could fill up).
public enum CommandRunner {
    /// Runs `argv` with exactly `environment` and waits for it, killing its process group after `timeout`; its input
    /// (`input`, or nothing) and output go through files in `scratch`. `shown` replaces argv in messages.
    public static func run(
        _ argv: [String], environment: [String: String], scratch: URL, timeout: Duration = .seconds(600),
        shown: [String]? = nil, workingDirectory: String? = nil, input: String? = nil
    ) async throws -> CommandResult {
        let token = UUID().uuidString
        let stdoutFile = scratch.appendingPathComponent("out-\(token)")
        let stderrFile = scratch.appendingPathComponent("err-\(token)")
        let stdinFile = input.map { _ in scratch.appendingPathComponent("in-\(token)") }
        defer {
            try? FileManager.default.removeItem(at: stdoutFile)
            try? FileManager.default.removeItem(at: stderrFile)
            if let stdinFile { try? FileManager.default.removeItem(at: stdinFile) }
        }
        if let input, let stdinFile { try Data(input.utf8).write(to: stdinFile) }
        let process = try ChildProcess(
            argv, environment: environment, stdin: stdinFile, stdout: .file(stdoutFile), stderr: .file(stderrFile),
            workingDirectory: workingDirectory)
        guard let status = await process.waitForExit(timeout: timeout) else {
            process.signalGroup(SIGKILL)
            await process.waitForExit()
            let stderr = (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? ""
            throw ProcessError("`\((shown ?? argv).joined(separator: " "))` did not finish within \(timeout) and was killed; stderr:\n\(stderr)")
        }
        return CommandResult(
            arguments: shown ?? argv, status: status,
            stdout: (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "", elapsed: process.elapsed ?? .zero)
    }

    /// The environment commands start from: this process's, without pop's own variables, so nothing leaks in.
    public static func baseEnvironment() -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("POP_") }
    }
}
