/// One write in an atomic ``CoordinationStore/multi(_:)``.
public enum StoreOperation: Hashable, Sendable, CustomStringConvertible {
    /// Creates a node.
    case create(String, data: [UInt8], mode: CreateMode = .persistent)
    /// Sets a node's data, if its version matches (any version when `nil`).
    case set(String, data: [UInt8], version: Int32? = nil)
    /// Deletes a node, if its version matches (any version when `nil`).
    case delete(String, version: Int32? = nil)
    /// Fails unless the node exists with this version (any version when `nil`).
    case check(String, version: Int32? = nil)

    /// The path the operation is about.
    public var path: String {
        switch self {
        case .create(let path, _, _), .set(let path, _, _), .delete(let path, _), .check(let path, _): path
        }
    }

    /// A short description for messages, such as `delete /pop/services/web`.
    public var description: String {
        switch self {
        case .create(let path, _, let mode): "create \(path)\(mode == .persistent ? "" : " (\(mode))")"
        case .set(let path, _, let version): "set \(path)\(version.map { " at version \($0)" } ?? "")"
        case .delete(let path, let version): "delete \(path)\(version.map { " at version \($0)" } ?? "")"
        case .check(let path, let version): "check \(path)\(version.map { " at version \($0)" } ?? "")"
        }
    }
}

/// The result of one operation of a successful ``CoordinationStore/multi(_:)``.
public enum OperationResult: Hashable, Sendable {
    /// The node was created at this path.
    case created(String)
    /// The node's data was set; its new stat.
    case set(NodeStat)
    /// The node was deleted.
    case deleted
    /// The check passed.
    case checked
}

/// One read in a batched ``CoordinationStore/read(_:)``.
public enum ReadOperation: Hashable, Sendable {
    /// Reads a node's data and stat.
    case get(String)
    /// Lists a node's children.
    case children(String)

    /// The path read.
    public var path: String {
        switch self {
        case .get(let path), .children(let path): path
        }
    }
}

/// The result of one read of a batched ``CoordinationStore/read(_:)``.
public enum ReadResult: Hashable, Sendable {
    /// The node's data and stat.
    case node(StoreNode)
    /// The node's children, sorted.
    case children([String])
    /// The read failed (usually `.notFound`).
    case failed(PopError)

    /// The node, or the error.
    public func node() throws(PopError) -> StoreNode {
        switch self {
        case .node(let node): return node
        case .failed(let error): throw error
        case .children: throw PopError(.system, "A children result was read as a node.")
        }
    }

    /// The children, or the error.
    public func children() throws(PopError) -> [String] {
        switch self {
        case .children(let names): return names
        case .failed(let error): throw error
        case .node: throw PopError(.system, "A node result was read as children.")
        }
    }

    /// The node, `nil` when it does not exist, or the error.
    public func nodeIfExists() throws(PopError) -> StoreNode? {
        if case .failed(let error) = self, error.code == .notFound { return nil }
        return try node()
    }

    /// The children, `nil` when the node does not exist, or the error.
    public func childrenIfExists() throws(PopError) -> [String]? {
        if case .failed(let error) = self, error.code == .notFound { return nil }
        return try children()
    }
}
