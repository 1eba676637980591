/// A change to a watched node.
public struct ZooKeeperWatchEvent: Hashable, Sendable {
    /// What happened to the node.
    public struct EventType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// ZooKeeper's numeric value.
        public var rawValue: Int32
        /// Creates an event type from ZooKeeper's numeric value.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// The node was created.
        public static let nodeCreated = EventType(rawValue: 1)
        /// The node was deleted.
        public static let nodeDeleted = EventType(rawValue: 2)
        /// The node's data changed.
        public static let nodeDataChanged = EventType(rawValue: 3)
        /// A child was added or removed.
        public static let nodeChildrenChanged = EventType(rawValue: 4)
        /// A data watch was removed with `removeWatches`.
        public static let dataWatchRemoved = EventType(rawValue: 5)
        /// A child watch was removed with `removeWatches`.
        public static let childWatchRemoved = EventType(rawValue: 6)
        /// A persistent watch was removed with `removeWatches`.
        public static let persistentWatchRemoved = EventType(rawValue: 7)

        /// A readable form, for logs and messages.
        public var description: String {
            switch self.rawValue {
            case 1: "nodeCreated"
            case 2: "nodeDeleted"
            case 3: "nodeDataChanged"
            case 4: "nodeChildrenChanged"
            case 5: "dataWatchRemoved"
            case 6: "childWatchRemoved"
            case 7: "persistentWatchRemoved"
            default: "eventType(\(self.rawValue))"
            }
        }
    }

    /// What happened.
    public var type: EventType
    /// The node it happened to, relative to the chroot.
    public var path: String

    /// Creates an event.
    public init(type: EventType, path: String) {
        self.type = type
        self.path = path
    }
}

/// The kind of a persistent watch added with `addWatch`.
public enum ZooKeeperAddWatchMode: Int32, Hashable, Sendable {
    /// Every change to the node itself (created, deleted, data changed, children changed), until removed.
    case persistent = 0
    /// Every creation, deletion and data change of the node and all its descendants, until removed.
    case persistentRecursive = 1
}

/// Which watches `removeWatches` removes.
public enum ZooKeeperWatcherType: Int32, Hashable, Sendable {
    /// Child watches.
    case children = 1
    /// Data and exist watches.
    case data = 2
    /// Every kind of watch on the path.
    case any = 3
    /// A persistent watch.
    case persistent = 4
    /// A persistent recursive watch.
    case persistentRecursive = 5
}
