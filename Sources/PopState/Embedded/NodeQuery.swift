import GRDB

#if canImport(GRDBSQLite)
import GRDBSQLite
#else
import SQLite3
#endif

/// The node table's two hottest queries, a node by path and the names under a parent, run on GRDB's cached prepared
/// statements through SQLite's C API, which GRDB hands out for this (`Statement.sqliteStatement`).
///
/// `pop status` with 100 services runs several hundred of them in one read, and GRDB's general path (an argument
/// array, a cursor and a row object per query, each column converted through its protocols) cost several times
/// SQLite's own work for each. The statements' text is used nowhere else, so GRDB never finds one bound or half-stepped: each use
/// resets it and clears its binding before returning.
enum NodeQuery {
    static let nodeSQL = "SELECT data, version, cversion, num_children, owner, ctime, mtime FROM node WHERE path = ?"
    static let childrenSQL = "SELECT path FROM node WHERE parent = ? ORDER BY path"

    /// The node at `path`, or nil.
    static func node(_ db: Database, _ path: String) throws -> NodeTable.Row? {
        try run(db, sql: nodeSQL, text: path) { statement in
            guard try step(statement, sql: nodeSQL) else { return nil }
            return NodeTable.Row(
                path: path, data: blob(statement, 0), version: Int32(truncatingIfNeeded: sqlite3_column_int64(statement, 1)),
                cversion: Int32(truncatingIfNeeded: sqlite3_column_int64(statement, 2)),
                numChildren: Int32(truncatingIfNeeded: sqlite3_column_int64(statement, 3)),
                owner: sqlite3_column_int64(statement, 4), ctime: sqlite3_column_int64(statement, 5),
                mtime: sqlite3_column_int64(statement, 6))
        }
    }

    /// The full paths of the nodes whose parent is `path`, in order.
    static func childPaths(_ db: Database, _ path: String) throws -> [String] {
        try run(db, sql: childrenSQL, text: path) { statement in
            var paths: [String] = []
            while try step(statement, sql: childrenSQL) {
                paths.append(text(statement, 0))
            }
            return paths
        }
    }

    /// Binds `text` to the cached statement's only parameter for the duration of `body`, without copying it.
    private static func run<T>(_ db: Database, sql: String, text: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        let statement = try db.cachedStatement(sql: sql).sqliteStatement
        return try text.withCString { characters in
            defer {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            }
            let bound = sqlite3_bind_text(statement, 1, characters, -1, nil)
            guard bound == SQLITE_OK else { throw failure(statement, bound, sql: sql) }
            return try body(statement)
        }
    }

    /// Advances to the next row: true for a row, false at the end; SQLite's errors as GRDB reports them.
    private static func step(_ statement: OpaquePointer, sql: String) throws -> Bool {
        let code = sqlite3_step(statement)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw failure(statement, code, sql: sql)
        }
    }

    private static func failure(_ statement: OpaquePointer, _ code: Int32, sql: String) -> DatabaseError {
        let message = sqlite3_db_handle(statement).flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
    }

    private static func blob(_ statement: OpaquePointer, _ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let bytes = sqlite3_column_blob(statement, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    private static func text(_ statement: OpaquePointer, _ column: Int32) -> String {
        guard let characters = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: characters, count: count), as: UTF8.self)
    }
}
