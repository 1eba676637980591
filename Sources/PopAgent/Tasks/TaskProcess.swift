#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PopState
import Subprocess
import SystemPackage

/// Runs one task command to completion: argv only (never a shell), in its own process group, with stdout and stderr
/// merged into a bounded tail, and a time limit after which the whole group is killed.
public enum TaskProcess {
    /// How a task's process ended.
    public struct Outcome: Hashable, Sendable {
        /// The exit status, or `nil` when the process was killed by a signal or did not start.
        public var exitCode: Int32?
        /// The signal that ended the process, if one did.
        public var signal: Int32?
        /// The end of the combined output.
        public var output: String
        /// Whether the time limit ended the process.
        public var timedOut: Bool
        /// Why the process could not start, if it could not.
        public var launchError: String?

        /// Whether the task succeeded (exit status 0).
        public var succeeded: Bool { exitCode == 0 && !timedOut && launchError == nil }

        /// A sentence for the result's error field, or `nil` on success.
        public var failure: String? {
            if let launchError { return launchError }
            if timedOut { return "The task did not finish within its time limit and was killed." }
            if let signal { return "The task was killed by signal \(signal)." }
            if let exitCode, exitCode != 0 { return "The task exited with status \(exitCode)." }
            return nil
        }
    }

    private enum Race: Sendable {
        case output(OutputTail)
        case timeout
    }

    /// Runs `argv` in `workingDirectory` with exactly `environment`, for at most `timeout`.
    public static func run(
        argv: [String], environment: [String: String], workingDirectory: String, timeout: Duration,
        outputLimit: Int = 64 * 1024
    ) async -> Outcome {
        guard let program = argv.first, !program.isEmpty else {
            return Outcome(exitCode: nil, output: "", timedOut: false, launchError: "The task's command is empty.")
        }
        var options = PlatformOptions()
        options.processGroupID = 0  // its own group, so a timeout kills its children too
        options.teardownSequence = [.send(signal: .kill, toProcessGroup: true, allowedDurationToNextStep: .seconds(1))]
        var variables: [Environment.Key: String] = [:]
        for (key, value) in environment {
            if let key = Environment.Key(rawValue: key) { variables[key] = value }
        }
        let configuration = Configuration(
            executable: program.contains("/") ? .path(FilePath(program)) : .name(program),
            arguments: Arguments(Array(argv.dropFirst())),
            environment: .custom(variables),
            workingDirectory: FilePath(workingDirectory),
            platformOptions: options)
        do {
            let result = try await Subprocess.run(
                configuration, input: .none, output: .sequence, error: .combinedWithOutput
            ) { execution -> (OutputTail, Bool) in
                let pid = execution.processIdentifier.value
                return try await withThrowingTaskGroup(of: Race.self) { group in
                    group.addTask {
                        var tail = OutputTail(limit: outputLimit)
                        for try await chunk in execution.standardOutput {
                            chunk.withUnsafeBytes { tail.append($0) }
                        }
                        return .output(tail)
                    }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        return .timeout
                    }
                    var timedOut = false
                    while let next = try await group.next() {
                        switch next {
                        case .output(let tail):
                            group.cancelAll()
                            return (tail, timedOut)
                        case .timeout:
                            timedOut = true
                            kill(-pid, SIGKILL)
                        }
                    }
                    return (OutputTail(limit: outputLimit), timedOut)
                }
            }
            let (tail, timedOut) = result.closureResult
            switch result.terminationStatus {
            case .exited(let code):
                return Outcome(exitCode: code, signal: nil, output: tail.text, timedOut: timedOut, launchError: nil)
            case .signaled(let signal):
                return Outcome(exitCode: nil, signal: signal, output: tail.text, timedOut: timedOut, launchError: nil)
            }
        } catch {
            return Outcome(
                exitCode: nil, signal: nil, output: "", timedOut: false,
                launchError: "The task's command '\(program)' could not be started: \(error).")
        }
    }
}
