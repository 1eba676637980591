import Foundation

/// The metadata of a node, as ZooKeeper's `Stat`.
public struct NodeStat: Hashable, Sendable {
    /// The data version: 0 at creation, bumped by every set.
    public var version: Int32
    /// The children version: bumped by every create or delete of a child.
    public var childrenVersion: Int32
    /// The session owning this ephemeral node, or 0 for a persistent node.
    public var ephemeralOwner: Int64
    /// The length of the data in bytes.
    public var dataLength: Int32
    /// How many children the node has.
    public var numChildren: Int32
    /// When the node was created.
    public var created: Date
    /// When the node's data was last set.
    public var modified: Date

    /// Creates a stat.
    public init(
        version: Int32, childrenVersion: Int32, ephemeralOwner: Int64, dataLength: Int32, numChildren: Int32,
        created: Date, modified: Date
    ) {
        self.version = version
        self.childrenVersion = childrenVersion
        self.ephemeralOwner = ephemeralOwner
        self.dataLength = dataLength
        self.numChildren = numChildren
        self.created = created
        self.modified = modified
    }

    /// Whether the node is ephemeral.
    public var isEphemeral: Bool { ephemeralOwner != 0 }
}

/// A node's data with its stat.
public struct StoreNode: Hashable, Sendable {
    /// The node's path.
    public var path: String
    /// The node's data.
    public var data: [UInt8]
    /// The node's metadata.
    public var stat: NodeStat

    /// Creates a node value.
    public init(path: String, data: [UInt8], stat: NodeStat) {
        self.path = path
        self.data = data
        self.stat = stat
    }
}

/// How ``CoordinationStore/create(_:data:mode:)`` creates a node.
public enum CreateMode: Hashable, Sendable, CaseIterable {
    /// Stays until deleted.
    case persistent
    /// Deleted when the creating session ends; cannot have children.
    case ephemeral
    /// Persistent, with a `%010d` suffix taken from the parent's children version.
    case persistentSequential
    /// Ephemeral and sequential.
    case ephemeralSequential

    /// Whether the node belongs to the creating session.
    public var isEphemeral: Bool { self == .ephemeral || self == .ephemeralSequential }
    /// Whether the store appends a sequence number to the name.
    public var isSequential: Bool { self == .persistentSequential || self == .ephemeralSequential }
}
