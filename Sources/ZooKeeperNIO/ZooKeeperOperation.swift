/// One operation of an atomic `multi`.
public enum ZooKeeperOperation: Hashable, Sendable {
    /// Create a node.
    case create(path: String, data: [UInt8], acl: [ZooKeeperACL] = ZooKeeperACL.open, mode: ZooKeeperCreateMode = .persistent)
    /// Delete a node if its version matches (-1: any version).
    case delete(path: String, version: Int32 = -1)
    /// Set a node's data if its version matches (-1: any version).
    case setData(path: String, data: [UInt8], version: Int32 = -1)
    /// Fail the whole multi unless the node's version matches.
    case check(path: String, version: Int32)

    /// The node the operation names.
    public var path: String {
        switch self {
        case .create(let path, _, _, _), .delete(let path, _), .setData(let path, _, _), .check(let path, _): path
        }
    }
}

/// The result of one operation of a successful `multi`.
public enum ZooKeeperOperationResult: Hashable, Sendable {
    /// The node was created under this path (with the sequence suffix, if any).
    case create(path: String, stat: ZooKeeperStat?)
    /// The node was deleted.
    case delete
    /// The data was set; the node's new stat.
    case setData(stat: ZooKeeperStat)
    /// The version check passed.
    case check
}

/// One read of a `multiRead`.
public enum ZooKeeperReadOperation: Hashable, Sendable {
    /// Read a node's data and stat.
    case getData(path: String)
    /// List a node's children.
    case getChildren(path: String)

    /// The node the read names.
    public var path: String {
        switch self {
        case .getData(let path), .getChildren(let path): path
        }
    }
}

/// The result of one read of a `multiRead`; reads fail one by one, not all together.
public enum ZooKeeperReadResult: Hashable, Sendable {
    /// The node's data and stat.
    case data([UInt8], stat: ZooKeeperStat)
    /// The node's children.
    case children([String])
    /// This read failed.
    case failure(ZooKeeperError)
}
