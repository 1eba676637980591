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
}
