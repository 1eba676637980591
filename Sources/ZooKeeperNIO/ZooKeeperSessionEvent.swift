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

/// Where a subscriber's session events go: each event, then the end once the session is over.
///
/// Both are called synchronously as the client publishes, so they must be quick and must not call back into the
/// client; yielding into a stream is typical.
public struct SessionEventSink: Sendable {
    let yield: @Sendable (ZooKeeperSessionEvent) -> Void
    let finish: @Sendable () -> Void

    /// A sink calling `yield` for each event and `finish` once after the terminal one.
    public init(yield: @escaping @Sendable (ZooKeeperSessionEvent) -> Void, finish: @escaping @Sendable () -> Void) {
        self.yield = yield
        self.finish = finish
    }
}

/// Ends a subscription made with ``ZooKeeperClient/subscribeSessionEvents(_:)``.
public struct ZooKeeperSessionSubscription: Sendable {
    private let onCancel: @Sendable () -> Void

    init(_ onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = onCancel
    }

    /// Stops the deliveries (the sink is not finished).
    public func cancel() {
        self.onCancel()
    }
}
