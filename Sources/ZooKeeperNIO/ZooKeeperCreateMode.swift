/// The kind of node `create` makes.
public enum ZooKeeperCreateMode: Hashable, Sendable {
    /// A node that lives until it is deleted.
    case persistent
    /// A persistent node whose name gets a 10-digit, monotonically increasing suffix.
    case persistentSequential
    /// A node deleted when the session that created it ends.
    case ephemeral
    /// An ephemeral node whose name gets a 10-digit suffix.
    case ephemeralSequential
    /// A node the server deletes once its last child is gone.
    case container
    /// A persistent node the server deletes after `ttl` milliseconds without children or changes
    /// (the server needs `zookeeper.extendedTypesEnabled=true`).
    case persistentWithTTL(milliseconds: Int64)
    /// A sequential persistent node with a TTL (the server needs `zookeeper.extendedTypesEnabled=true`).
    case persistentSequentialWithTTL(milliseconds: Int64)

    /// The flags value ZooKeeper's CreateMode uses.
    var flags: Int32 {
        switch self {
        case .persistent: 0
        case .ephemeral: 1
        case .persistentSequential: 2
        case .ephemeralSequential: 3
        case .container: 4
        case .persistentWithTTL: 5
        case .persistentSequentialWithTTL: 6
        }
    }

    /// The opcode carrying a create in this mode.
    var opCode: ZooKeeperOpCode {
        switch self {
        case .container: .createContainer
        case .persistentWithTTL, .persistentSequentialWithTTL: .createTTL
        default: .create2
        }
    }

    var ttl: Int64? {
        switch self {
        case .persistentWithTTL(let ttl), .persistentSequentialWithTTL(let ttl): ttl
        default: nil
        }
    }

    /// Whether the node is ephemeral.
    public var isEphemeral: Bool { self == .ephemeral || self == .ephemeralSequential }

    /// Whether the server appends a sequence number to the name.
    public var isSequential: Bool {
        switch self {
        case .persistentSequential, .ephemeralSequential, .persistentSequentialWithTTL: true
        default: false
        }
    }
}

/// ZooKeeper's request opcodes.
enum ZooKeeperOpCode: Int32, Hashable, Sendable {
    case notification = 0
    case create = 1
    case delete = 2
    case exists = 3
    case getData = 4
    case setData = 5
    case getACL = 6
    case setACL = 7
    case getChildren = 8
    case sync = 9
    case ping = 11
    case getChildren2 = 12
    case check = 13
    case multi = 14
    case create2 = 15
    case reconfig = 16
    case checkWatches = 17
    case removeWatches = 18
    case createContainer = 19
    case deleteContainer = 20
    case createTTL = 21
    case multiRead = 22
    case auth = 100
    case setWatches = 101
    case sasl = 102
    case getEphemerals = 103
    case getAllChildrenNumber = 104
    case setWatches2 = 105
    case addWatch = 106
    case whoAmI = 107
    case closeSession = -11
    case error = -1
}
