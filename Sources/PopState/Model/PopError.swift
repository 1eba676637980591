/// An error pop reports to a person: what happened, to what, and what to do.
public struct PopError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; the CLI maps each code to a documented exit status.
    public enum Code: String, Hashable, Sendable, Codable {
        /// The input was malformed: a bad name, an option of the wrong type, a port out of range.
        case invalidInput
        /// A named service, template, machine, task or node does not exist.
        case notFound
        /// The thing already exists, or changed underneath us (a compare-and-set lost).
        case conflict
        /// The coordination store could not be reached within the connect timeout.
        case storeUnreachable
        /// The store holds data pop cannot read (malformed record, incompatible layout).
        case corruptState
        /// Credentials are missing or wrong, or a credentials file is unsafe.
        case permissionDenied
        /// A process, file or system call failed.
        case system
        /// pop's namespace has not been created yet.
        case notInitialized
    }

    /// The kind of failure.
    public var code: Code
    /// One sentence: what happened, to what.
    public var message: String
    /// What the user can do about it, if anything.
    public var hint: String?
    /// The store path (node) the error is about, when there is one.
    public var path: String?
    /// For a failed atomic multi-operation, the index of the operation that failed.
    public var operationIndex: Int?

    /// Creates an error with a message and an optional hint, store path and failed operation index.
    public init(_ code: Code, _ message: String, hint: String? = nil, path: String? = nil, operationIndex: Int? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.path = path
        self.operationIndex = operationIndex
    }

    public var description: String {
        if let hint { return "\(message)\n\(hint)" }
        return message
    }
}
