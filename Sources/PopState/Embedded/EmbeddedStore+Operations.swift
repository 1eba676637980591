import GRDB

extension EmbeddedStore {
    public func create(_ path: String, data: [UInt8], mode: CreateMode) async throws -> String {
        try await write { db, now, session in
            try NodeTable.create(db, path: path, data: data, mode: mode, session: session, now: now)
        }
    }

    public func get(_ path: String) async throws -> StoreNode {
        try NodePath.validate(path)
        return try await read { db in try NodeTable.require(db, path, for: "read").node }
    }

    public func exists(_ path: String) async throws -> NodeStat? {
        try NodePath.validate(path)
        return try await read { db in try NodeTable.fetch(db, path)?.stat }
    }

    public func children(_ path: String) async throws -> [String] {
        try NodePath.validate(path)
        return try await read { db in
            _ = try NodeTable.require(db, path, for: "list the children of")
            return try NodeTable.children(db, path)
        }
    }

    public func set(_ path: String, data: [UInt8], version: Int32?) async throws -> NodeStat {
        try await write { db, now, _ in try NodeTable.set(db, path: path, data: data, version: version, now: now) }
    }

    public func delete(_ path: String, version: Int32?) async throws {
        try await write { db, now, _ in try NodeTable.delete(db, path: path, version: version, now: now) }
    }

    public func multi(_ operations: [StoreOperation]) async throws -> [OperationResult] {
        try await write { db, now, session in
            var results: [OperationResult] = []
            results.reserveCapacity(operations.count)
            for (index, operation) in operations.enumerated() {
                do {
                    results.append(try NodeTable.apply(db, operation, session: session, now: now))
                } catch var error as PopError {
                    error.message =
                        "Nothing was changed: operation \(index + 1) of \(operations.count) (\(operation)) failed. "
                        + error.message
                    error.operationIndex = index
                    error.path = error.path ?? operation.path
                    throw error
                }
            }
            return results
        }
    }

    public func read(_ operations: [ReadOperation]) async throws -> [ReadResult] {
        try await read { db in
            try operations.map { operation -> ReadResult in
                do {
                    try NodePath.validate(operation.path)
                    switch operation {
                    case .get(let path):
                        return .node(try NodeTable.require(db, path, for: "read").node)
                    case .children(let path):
                        _ = try NodeTable.require(db, path, for: "list the children of")
                        return .children(try NodeTable.children(db, path))
                    }
                } catch let error as PopError {
                    return .failed(error)
                }
            }
        }
    }

    public func getAndWatch(_ path: String) async throws -> (StoreNode, OneShotWatch) {
        try NodePath.validate(path)
        return try await watched(.data, path) { db in try NodeTable.require(db, path, for: "read").node }
    }

    public func existsAndWatch(_ path: String) async throws -> (NodeStat?, OneShotWatch) {
        try NodePath.validate(path)
        return try await watched(.data, path) { db in try NodeTable.fetch(db, path)?.stat }
    }

    public func childrenAndWatch(_ path: String) async throws -> ([String], OneShotWatch) {
        try NodePath.validate(path)
        return try await watched(.children, path) { db in
            _ = try NodeTable.require(db, path, for: "list the children of")
            return try NodeTable.children(db, path)
        }
    }

    public func addWatch(_ path: String, subtree: Bool, into events: NodeEvents.Continuation) async throws -> WatchHandle {
        try NodePath.validate(path)
        try checkOpen()
        try activateWatching()
        let token = try registry.registerSubtree(root: path, recursive: subtree, sharing: events)
        do {
            let since = try await read { db in try NodeTable.position(db) }
            registry.activate(token, since: since)
            let registry = self.registry
            return WatchHandle { registry.discard(token) }
        } catch {
            registry.discard(token)
            throw error
        }
    }

    /// Registers a pending watch, runs the read with the log position of its snapshot, then activates the watch.
    private func watched<T: Sendable>(
        _ kind: WatchRegistry.OneShotKind, _ path: String, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> (T, OneShotWatch) {
        try checkOpen()
        try activateWatching()
        let (token, watch) = try registry.registerOneShot(kind, path: path)
        do {
            let (value, since) = try await read { db in (try body(db), try NodeTable.position(db)) }
            registry.activate(token, since: since)
            return (value, watch)
        } catch {
            registry.discard(token)
            throw error
        }
    }
}
