/// A change in the client's session, as delivered by `ZooKeeperClient.sessionEvents`.
public enum ZooKeeperSessionEvent: Hashable, Sendable {
    /// A new session was established with a server.
    case connected(sessionID: Int64, server: String, negotiatedTimeout: Duration)
    /// The connection to `server` was lost. The session may still be alive; the client is reconnecting.
    /// Requests in flight failed with `.connectionLoss`; new requests wait for the reconnect.
    case disconnected(server: String)
    /// The same session was resumed, possibly on another ensemble member. Watches were re-registered.
    case reconnected(sessionID: Int64, server: String)
    /// The session expired: its ephemeral nodes and watches are gone. The client is finished; connect a new one.
    case expired(sessionID: Int64)
    /// The client was closed.
    case closed
    /// A server rejected the credentials of `scheme`. The client is finished.
    case authFailed(scheme: String)

    /// Whether no further events follow.
    public var isTerminal: Bool {
        switch self {
        case .expired, .closed, .authFailed: true
        default: false
        }
    }
}
