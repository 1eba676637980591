import Foundation
import GRDB

/// The embedded store's SQL: nodes, sessions and the change log, each function running inside the caller's
/// transaction. It implements ZooKeeper's rules (versions, sequential names, ephemerals without children, delete
/// only when empty) so that the store handle only deals with connections, sessions and watches.
package enum NodeTable {
    /// The schema version this code reads and writes.
    static let schemaVersion = 1

    static let schema = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS node (
            path TEXT PRIMARY KEY NOT NULL,
            parent TEXT NOT NULL,
            data BLOB NOT NULL,
            version INTEGER NOT NULL DEFAULT 0,
            cversion INTEGER NOT NULL DEFAULT 0,
            num_children INTEGER NOT NULL DEFAULT 0,
            owner INTEGER NOT NULL DEFAULT 0,
            ctime INTEGER NOT NULL,
            mtime INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS node_by_parent ON node(parent, path);
        CREATE INDEX IF NOT EXISTS node_by_owner ON node(owner) WHERE owner != 0;
        CREATE TABLE IF NOT EXISTS session (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            boot_id TEXT NOT NULL,
            timeout_ms INTEGER NOT NULL,
            expires INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            created INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS change (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL,
            kind INTEGER NOT NULL,
            time INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO node (path, parent, data, ctime, mtime) VALUES ('/', '', x'', 0, 0);
        """

    /// What a database holds, as far as the schema goes.
    enum SchemaState: Hashable {
        /// pop's tables, at the version this code reads and writes.
        case current
        /// No pop tables yet (a new, empty database).
        case missing
    }

    /// Reads (without writing) whether the database holds pop's schema; another version is `.corruptState`.
    static func schemaState(_ db: Database, file: String) throws -> SchemaState {
        // One query of the main schema; GRDB's `tableExists` would first load and cache every schema's objects.
        let hasMeta = try Bool.fetchOne(
            db, sql: "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'meta')")
        guard hasMeta == true else { return .missing }
        let stored = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema'")
        guard let stored else { return .missing }
        guard Int(stored) == schemaVersion else {
            throw PopError(
                .corruptState,
                "The embedded store \(file) has schema version \(stored); this pop understands version \(schemaVersion).",
                hint: "Use the pop release that wrote it, or move the file away to start afresh.")
        }
        return .current
    }

    /// Creates the schema, or checks that an existing one is one this code understands.
    static func migrate(_ db: Database, file: String) throws {
        try db.execute(sql: schema)
        let stored = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema'")
        if let stored {
            guard Int(stored) == schemaVersion else {
                throw PopError(
                    .corruptState,
                    "The embedded store \(file) has schema version \(stored); this pop understands version \(schemaVersion).",
                    hint: "Use the pop release that wrote it, or move the file away to start afresh.")
            }
        } else {
            try db.execute(
                sql: "INSERT INTO meta (key, value) VALUES ('schema', ?)", arguments: [String(schemaVersion)])
        }
    }

    // MARK: Reading

    struct Row {
        var path: String
        var data: [UInt8]
        var version: Int32
        var cversion: Int32
        var numChildren: Int32
        var owner: Int64
        var ctime: Int64
        var mtime: Int64

        var stat: NodeStat {
            NodeStat(
                version: version, childrenVersion: cversion, ephemeralOwner: owner, dataLength: Int32(data.count),
                numChildren: numChildren, created: Date(timeIntervalSince1970: Double(ctime) / 1000),
                modified: Date(timeIntervalSince1970: Double(mtime) / 1000))
        }

        var node: StoreNode { StoreNode(path: path, data: data, stat: stat) }
    }

    static func fetch(_ db: Database, _ path: String) throws -> Row? {
        try NodeQuery.node(db, path)
    }

    static func require(_ db: Database, _ path: String, for action: String) throws -> Row {
        guard let row = try fetch(db, path) else { throw notFound(path, action: action) }
        return row
    }

    static func children(_ db: Database, _ path: String) throws -> [String] {
        try NodeQuery.childPaths(db, path).map(NodePath.name)
    }

    /// The position of the newest change-log row (0 when none was ever written).
    static func position(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'change'") ?? 0
    }

    static func changes(_ db: Database, after position: Int64, limit: Int) throws -> [ChangeRecord] {
        try GRDB.Row.fetchAll(
            db, sql: "SELECT id, kind, path FROM change WHERE id > ? ORDER BY id LIMIT ?", arguments: [position, limit]
        ).map { row in
            let kind: NodeEvent.Kind =
                switch row[1] as Int {
                case 1: .created
                case 2: .deleted
                default: .dataChanged
                }
            return ChangeRecord(id: row[0], kind: kind, path: row[2])
        }
    }

    // MARK: Writing

    static func create(
        _ db: Database, path: String, data: [UInt8], mode: CreateMode, session: Int64, now: Int64
    ) throws -> String {
        try NodePath.validate(mode.isSequential ? path + "0000000000" : path)
        guard path != "/" else { throw exists("/") }
        let parentPath = NodePath.parent(path)!
        guard let parent = try fetch(db, parentPath) else {
            throw PopError(
                .notFound, "Cannot create \(path): its parent \(parentPath) does not exist.", path: parentPath)
        }
        guard parent.owner == 0 else {
            throw PopError(
                .invalidInput, "Cannot create \(path): its parent \(parentPath) is ephemeral, and ephemeral nodes cannot have children.",
                path: parentPath)
        }
        let created = mode.isSequential ? path + NodePath.sequenceSuffix(parent.cversion) : path
        guard try fetch(db, created) == nil else { throw exists(created) }
        try db.cachedStatement(sql: "INSERT INTO node (path, parent, data, owner, ctime, mtime) VALUES (?, ?, ?, ?, ?, ?)").execute(arguments: [created, parentPath, Data(data), mode.isEphemeral ? session : 0, now, now])
        try db.cachedStatement(sql: "UPDATE node SET cversion = ?, num_children = num_children + 1 WHERE path = ?").execute(arguments: [Int64(parent.cversion &+ 1), parentPath])
        try log(db, .created, created, now: now)
        return created
    }

    static func set(_ db: Database, path: String, data: [UInt8], version: Int32?, now: Int64) throws -> NodeStat {
        try NodePath.validate(path)
        var row = try require(db, path, for: "set")
        try checkVersion(row, version, action: "set")
        row.version = row.version &+ 1
        row.data = data
        row.mtime = now
        try db.cachedStatement(sql: "UPDATE node SET data = ?, version = ?, mtime = ? WHERE path = ?").execute(arguments: [Data(data), Int64(row.version), now, path])
        try log(db, .dataChanged, path, now: now)
        return row.stat
    }

    static func delete(_ db: Database, path: String, version: Int32?, now: Int64) throws {
        try NodePath.validate(path)
        guard path != "/" else {
            throw PopError(.invalidInput, "The root node / cannot be deleted.", path: "/")
        }
        let row = try require(db, path, for: "delete")
        try checkVersion(row, version, action: "delete")
        guard row.numChildren == 0 else {
            throw PopError(
                .conflict, "Cannot delete \(path): it has \(row.numChildren) child node(s).",
                hint: "Delete its children first.", path: path)
        }
        let parentPath = NodePath.parent(path)!
        try db.cachedStatement(sql: "DELETE FROM node WHERE path = ?").execute(arguments: [path])
        let parentVersion = try fetch(db, parentPath)?.cversion ?? 0
        try db.cachedStatement(sql: "UPDATE node SET cversion = ?, num_children = num_children - 1 WHERE path = ?").execute(arguments: [Int64(parentVersion &+ 1), parentPath])
        try log(db, .deleted, path, now: now)
    }

    static func check(_ db: Database, path: String, version: Int32?) throws {
        try NodePath.validate(path)
        let row = try require(db, path, for: "check")
        try checkVersion(row, version, action: "check")
    }

    static func apply(_ db: Database, _ operation: StoreOperation, session: Int64, now: Int64) throws -> OperationResult {
        switch operation {
        case .create(let path, let data, let mode):
            return .created(try create(db, path: path, data: data, mode: mode, session: session, now: now))
        case .set(let path, let data, let version):
            return .set(try set(db, path: path, data: data, version: version, now: now))
        case .delete(let path, let version):
            try delete(db, path: path, version: version, now: now)
            return .deleted
        case .check(let path, let version):
            try check(db, path: path, version: version)
            return .checked
        }
    }

    // MARK: Sessions

    static func createSession(_ db: Database, bootID: String, timeoutMilliseconds: Int64, clock: Int64, now: Int64) throws
        -> Int64
    {
        try db.cachedStatement(sql: "INSERT INTO session (boot_id, timeout_ms, expires, pid, created) VALUES (?, ?, ?, ?, ?)").execute(arguments: [bootID, timeoutMilliseconds, clock + timeoutMilliseconds, Int64(getpid()), now])
        return db.lastInsertedRowID
    }

    /// Extends a session; returns false when it no longer exists (it expired and was reaped).
    static func heartbeat(_ db: Database, session: Int64, clock: Int64) throws -> Bool {
        try db.cachedStatement(sql: "UPDATE session SET expires = ? + timeout_ms WHERE id = ?").execute(arguments: [clock, session])
        return db.changesCount > 0
    }

    static func sessionExists(_ db: Database, _ session: Int64) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM session WHERE id = ?", arguments: [session]) ?? false
    }

    /// Deletes a session and its ephemeral nodes (logging each delete, so watchers are told).
    static func deleteSession(_ db: Database, _ session: Int64, now: Int64) throws {
        let paths = try String.fetchAll(
            db, sql: "SELECT path FROM node WHERE owner = ? ORDER BY path", arguments: [session])
        for path in paths {
            try delete(db, path: path, version: nil, now: now)
        }
        try db.cachedStatement(sql: "DELETE FROM session WHERE id = ?").execute(arguments: [session])
    }

    /// Whether some session's heartbeats stopped for its timeout, or it belongs to an earlier boot.
    static func hasExpiredSessions(_ db: Database, bootID: String, clock: Int64) throws -> Bool {
        try Bool.fetchOne(
            db, sql: "SELECT 1 FROM session WHERE expires < ? OR boot_id != ? LIMIT 1", arguments: [clock, bootID])
            ?? false
    }

    /// Deletes every session whose heartbeats stopped for its timeout, or that belongs to an earlier boot.
    static func reapExpiredSessions(_ db: Database, bootID: String, clock: Int64, now: Int64) throws -> [Int64] {
        let expired = try Int64.fetchAll(
            db, sql: "SELECT id FROM session WHERE expires < ? OR boot_id != ?", arguments: [clock, bootID])
        for session in expired {
            try deleteSession(db, session, now: now)
        }
        return expired
    }

    /// Drops change-log rows written before `cutoff` (wall-clock milliseconds), up to row `position` at most.
    static func trimChanges(_ db: Database, before cutoff: Int64, upTo position: Int64) throws {
        // Rows are in time order, so this stops at the first young row instead of scanning the whole log. The bound
        // is one expression: given two upper bounds on the id, SQLite seeks by one and tests the other on every row
        // below it, which read the whole log at every heartbeat.
        try db.execute(
            sql: """
                DELETE FROM change WHERE id < min(?, coalesce(
                    (SELECT id FROM change WHERE time >= ? ORDER BY id LIMIT 1),
                    (SELECT max(id) + 1 FROM change), 0))
                """,
            arguments: [position + 1, cutoff])
    }

    // MARK: Helpers

    private static func log(_ db: Database, _ kind: NodeEvent.Kind, _ path: String, now: Int64) throws {
        let code =
            switch kind {
            case .created: 1
            case .deleted: 2
            case .dataChanged, .childrenChanged: 3  // Never logged: children changes are derived from creates and deletes.
            }
        try db.cachedStatement(sql: "INSERT INTO change (path, kind, time) VALUES (?, ?, ?)").execute(arguments: [path, code, now])
    }

    private static func checkVersion(_ row: Row, _ expected: Int32?, action: String) throws {
        if let expected, expected != row.version {
            throw PopError(
                .conflict,
                "Cannot \(action) \(row.path): expected version \(expected) but it is at version \(row.version); someone else changed it.",
                hint: "Read it again and retry.", path: row.path)
        }
    }

    static func notFound(_ path: String, action: String) -> PopError {
        PopError(.notFound, "Cannot \(action) \(path): no such node.", path: path)
    }

    static func exists(_ path: String) -> PopError {
        PopError(.conflict, "Cannot create \(path): it already exists.", path: path)
    }
}
