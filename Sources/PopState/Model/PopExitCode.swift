/// pop's documented exit codes (docs/cli.md): what a command's exit status means.
///
/// The one declaration of them: the command line exits with these, prints them in its help, and the tests check them.
public enum PopExitCode: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case success = 0
    case failure = 1
    case usage = 2
    case notFound = 3
    case conflict = 4
    case storeUnreachable = 5
    case corruptState = 6
    case permissionDenied = 7
    case notInitialized = 8

    /// The exit code of a command that failed with `code`.
    public init(_ code: PopError.Code) {
        switch code {
        case .invalidInput: self = .usage
        case .notFound: self = .notFound
        case .conflict: self = .conflict
        case .storeUnreachable: self = .storeUnreachable
        case .corruptState: self = .corruptState
        case .permissionDenied: self = .permissionDenied
        case .system: self = .failure
        case .notInitialized: self = .notInitialized
        }
    }

    /// What the code means, in a few words: `store unreachable`.
    public var description: String {
        switch self {
        case .success: "success"
        case .failure: "failure"
        case .usage: "usage or invalid input"
        case .notFound: "not found"
        case .conflict: "conflict"
        case .storeUnreachable: "store unreachable"
        case .corruptState: "store holds unreadable or incompatible data"
        case .permissionDenied: "permission denied"
        case .notInitialized: "namespace not initialized (run `pop init`)"
        }
    }
}
