import Foundation

/// The process's environment, read once.
///
/// Foundation builds a new dictionary of every variable at each `ProcessInfo.processInfo.environment`, and a command
/// reads it in several places (its logging, its terminal, its store's configuration); pop never changes its own
/// environment, so one copy serves them all.
enum CommandEnvironment {
    static let variables: [String: String] = ProcessInfo.processInfo.environment
}
