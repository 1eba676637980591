/// A change seen by a watch: a one-shot watch (``OneShotWatch``, as ZooKeeper's `WatchedEvent`) or a persistent one
/// (``CoordinationStore/watchSubtree(_:)`` or ``CoordinationStore/watchNode(_:)``).
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
