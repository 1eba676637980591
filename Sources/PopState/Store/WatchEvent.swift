/// What a one-shot watch reports, as ZooKeeper's `WatchedEvent`.
public struct WatchEvent: Hashable, Sendable, CustomStringConvertible {
    /// What happened.
    public enum Kind: String, Hashable, Sendable {
        /// The watched node was created.
        case nodeCreated
        /// The watched node was deleted.
        case nodeDeleted
        /// The watched node's data was set.
        case nodeDataChanged
        /// A child of the watched node was created or deleted.
        case nodeChildrenChanged
    }

    /// What happened.
    public var kind: Kind
    /// The watched node's path.
    public var path: String

    /// Creates an event.
    public init(_ kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

    public var description: String { "\(kind) \(path)" }
}

/// A change seen by a persistent watch (``CoordinationStore/watchSubtree(_:)`` or ``CoordinationStore/watchNode(_:)``).
public struct NodeEvent: Hashable, Sendable, CustomStringConvertible {
    /// What happened to the node.
    public enum Kind: String, Hashable, Sendable {
        /// The node was created.
        case created
        /// The node was deleted.
        case deleted
        /// The node's data was set.
        case dataChanged
        /// A child of the node was created or deleted (node watches only; a subtree watch reports the child itself).
        case childrenChanged
    }

    /// What happened.
    public var kind: Kind
    /// The node's path.
    public var path: String

    /// Creates an event.
    public init(_ kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

    public var description: String { "\(kind) \(path)" }
}

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
