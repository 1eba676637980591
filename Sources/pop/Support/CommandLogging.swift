import Foundation
import Logging

/// Where the libraries' logs go when pop runs as a command.
enum CommandLogging {
    /// Sends logs to standard error at `level` when given (the agent's `--log-level`), else at `POP_LOG_LEVEL`
    /// (default `warning`), so that a command's output is its own: a ZooKeeper session being established is not
    /// news to someone running `pop status`.
    static func bootstrap(
        level requested: Logger.Level? = nil, environment: [String: String] = CommandEnvironment.variables
    ) {
        let level =
            requested ?? environment["POP_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
