import PopState

/// pop's documented exit codes (docs/cli.md).
enum ExitStatus: Int32 {
    case success = 0
    case failure = 1
    case usage = 2
    case notFound = 3
    case conflict = 4
    case storeUnreachable = 5
    case corruptState = 6
    case permissionDenied = 7
    case notInitialized = 8

    init(_ code: PopError.Code) {
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
}
