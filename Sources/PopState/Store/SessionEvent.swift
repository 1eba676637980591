/// A change in a store handle's session.
public enum SessionEvent: String, Hashable, Sendable {
    /// The session is established.
    case connected
    /// The store cannot be reached for now; the session may still be alive.
    case disconnected
    /// The store can be reached again, with the same session.
    case reconnected
    /// The session expired: its ephemeral nodes are gone and the handle is dead. Open a new one.
    case expired
    /// The session was closed by its owner.
    case closed
    /// The store rejected the session's credentials: the handle is dead, and its operations fail with
    /// `.permissionDenied` (``authenticationError``). Fix the credentials and open a new one.
    case authFailed

    /// Whether no event follows.
    public var isTerminal: Bool {
        switch self {
        case .expired, .closed, .authFailed: true
        case .connected, .disconnected, .reconnected: false
        }
    }

    /// What an owner that needs the session reports when it ends with this event.
    public var endingError: PopError? {
        switch self {
        case .connected, .disconnected, .reconnected: nil
        case .expired: PopError(.storeUnreachable, "The store session expired.")
        case .closed: PopError(.storeUnreachable, "The store session was closed.")
        case .authFailed: Self.authenticationError
        }
    }

    /// The error of a session whose credentials the store rejected.
    public static let authenticationError = PopError(
        .permissionDenied, "The store rejected the session's credentials and ended it.",
        hint: "Check POP_AUTH or the credentials file against those `pop init --auth` set.")
}
