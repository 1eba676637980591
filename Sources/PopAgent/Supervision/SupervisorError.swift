#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PopState

/// An error from the process supervisor: what happened, to which instance or file, and what to do.
public struct SupervisorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Hashable, Sendable, Codable {
        /// An instance's configuration cannot be used (bad signal name, bad health check, empty command).
        case invalidConfiguration
        /// The executable could not be found or is not executable.
        case executableNotFound
        /// Starting a process failed (posix_spawn, a missing folder, a log file that cannot be opened).
        case spawnFailed
        /// A system call the supervisor depends on failed.
        case system
        /// A local instance record could not be read or written.
        case record
    }

    /// The kind of failure.
    public var code: Code
    /// One sentence: what happened, to what.
    public var message: String
    /// What the user can do about it, if anything.
    public var hint: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message) \(hint)" }
        return message
    }

    /// The same failure as a ``PopError`` with code `.system` or `.invalidInput`, for the CLI.
    public var popError: PopError {
        PopError(code == .invalidConfiguration ? .invalidInput : .system, message, hint: hint)
    }
}

extension SupervisorError {
    /// A failed system call, with errno's description.
    static func system(_ what: String, errno code: Int32 = errno) -> SupervisorError {
        SupervisorError(.system, "Could not \(what): \(String(cString: strerror(code))).")
    }
}
