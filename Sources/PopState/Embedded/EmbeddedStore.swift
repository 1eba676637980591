import Foundation
import GRDB
#if canImport(GRDBSQLite)
import GRDBSQLite
#else
import SQLite3
#endif
import Logging
import Synchronization

/// The single-machine ``CoordinationStore``: a SQLite database (WAL mode) shared by every pop process on the machine.
///
/// - Every write is one IMMEDIATE transaction (writers wait up to the busy timeout for each other) that also appends
///   to a change log, whose ids are strictly increasing and gap-free in commit order.
/// - After each commit the writer touches a commit file next to the database. Every handle runs one dispatcher
///   thread that sleeps on a ``ChangeMonitor`` of that file (inotify), wakes when it is touched, reads the new
///   change-log rows and fires its watches. An idle handle's thread sleeps until its next heartbeat.
/// - A handle owns a session row from its first write on, renewed by a heartbeat every third of the session timeout
///   from the same thread. Opening a handle and reading through it write nothing, so pop can read its state on a full
///   disk; a handle that never writes has no session (``sessionID`` is 0).
/// - At every heartbeat, and when opening if there are any, a handle deletes the sessions whose heartbeats stopped for
///   their timeout (and their ephemeral nodes), so expired sessions are reaped by whichever pop process runs next.
/// - The write-ahead log is checkpointed into the database file when a handle that wrote closes, and whenever it
///   holds ``checkpointFrames`` pages, so that the database file alone holds the state a few writes after any change.
public final class EmbeddedStore: CoordinationStore {
    /// Every client of an embedded store runs on this machine.
    public var isMachineLocal: Bool { true }

    /// Settings of a store handle.
    public struct Options: Sendable {
        /// How long a session lives without heartbeats.
        public var sessionTimeout: Duration
        /// How long a write waits for another process's write transaction to finish.
        public var busyTimeout: Duration
        /// How long change-log rows are kept (far longer than any session timeout).
        public var changeLogRetention: Duration
        /// Where the handle logs.
        public var logger: Logger
        /// How many SQLite connections the handle holds.
        public var connections: Connections

        /// Creates options.
        public init(
            sessionTimeout: Duration = .seconds(10), busyTimeout: Duration = .seconds(5),
            changeLogRetention: Duration = .seconds(600), logger: Logger = Logger(label: "pop.store.embedded"),
            connections: Connections = .pool
        ) {
            self.sessionTimeout = sessionTimeout
            self.busyTimeout = busyTimeout
            self.changeLogRetention = changeLogRetention
            self.logger = logger
            self.connections = connections
        }
    }

    /// How many SQLite connections a handle holds. Both give every read a consistent snapshot and every write one
    /// IMMEDIATE transaction; they differ only in what runs at once inside one process.
    public enum Connections: Sendable {
        /// A writer and up to four readers beside it (GRDB's `DatabasePool`): reads run while a write does. For
        /// processes that live and serve many callers at once: the agent, the dashboard.
        case pool
        /// One connection for reads and writes in turn (GRDB's `DatabaseQueue`), for a command that runs once: it
        /// opens one connection instead of two, and skips the write-ahead log's set-up when the database is in WAL
        /// mode already. A database that is not (a new store) is opened as a pool, which sets the mode up.
        case single
    }

    /// How much of the database file a command's connection maps (SQLite's `mmap_size`); past it, pages are read.
    static let mappedBytes = 64 << 20

    /// The database file name inside the store folder.
    public static let databaseName = "store.sqlite"
    /// The file touched after every commit, whose changes wake watchers in every process.
    public static let commitFileName = "store.sqlite-commit"

    /// The database file.
    public let databasePath: String
    /// The session this handle owns, created by its first write; 0 before (a handle that only reads has none).
    public var sessionID: Int64 { lifecycle.withLock { $0.session ?? 0 } }
    /// `embedded store <database path>`.
    public var description: String { "embedded store \(databasePath)" }
    /// Why this handle can only read (the database could not be opened for writing), or `nil`.
    public let readOnlyReason: String?
    /// Whether this handle holds one connection (``Connections/single``) rather than a pool.
    var holdsOneConnection: Bool { database is DatabaseQueue }

    /// The write-ahead log's size, in pages, past which a commit checkpoints it into the database file (SQLite's
    /// default is 1,000 pages, 4 MB: pop's writes are small, so a store was seen with everything still in the log).
    static let checkpointFrames = 64

    let database: any DatabaseWriter
    let registry: WatchRegistry
    let monitor: any ChangeMonitor
    let commitFile: Int32
    let options: Options
    let lifecycle: Mutex<Lifecycle>

    struct Lifecycle {
        enum Phase { case open, expired, closed }
        var phase: Phase = .open
        /// The session, once the first write created it.
        var session: Int64?
        /// Whether this handle wrote (then its close checkpoints the log).
        var wrote = false
        /// Whether this handle has set a watch (then its dispatcher beats, reaping expired sessions).
        var watching = false
        var reachable = true
        var subscribers: [Int: AsyncStream<SessionEvent>.Continuation] = [:]
        var nextSubscriber = 0
        /// Whether the dispatcher's thread was started (at the session's creation or the first watch).
        var dispatcherStarted = false
        var loopExited = true
        var heartbeatsSuspended = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Opens (creating if needed) the store in `folder`.
    ///
    /// The folder is created 0700 and the files 0600; a folder others can write is refused. Opening an existing store
    /// writes nothing (unless it finds expired sessions to reap, which it tries and may skip): the session is created by
    /// the first write. When the database cannot be opened for writing (a full disk, a read-only file system), the
    /// handle reads only and every write fails saying why.
    public static func open(folder: String, options: Options = Options()) async throws -> EmbeddedStore {
        try PrivateFiles.ensureFolder(folder)
        let path = folder.hasSuffix("/") ? folder + databaseName : folder + "/" + databaseName
        let commitPath = path + "-commit"
        try PrivateFiles.ensureFile(path)
        try PrivateFiles.ensureFile(commitPath)

        var configuration = Configuration()
        configuration.busyMode = .timeout(TimeInterval(options.busyTimeout.milliseconds) / 1000)
        configuration.maximumReaderCount = 4
        // ``releaseCaches()`` empties the readers' page caches and keeps them open.
        configuration.persistentReadOnlyConnections = true
        configuration.label = "pop.store"
        // A command that runs once reads the database file through a memory map, instead of copying each page it
        // reads with its own pread(2) (about 500 for `pop status` of 100 services). A long-running process does not:
        // the file's pages it read would stay in its resident memory. Writes go through write(2) either way.
        let mapsFile: Bool
        if case .single = options.connections { mapsFile = true } else { mapsFile = false }
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL survives a process crash; a power loss may lose the last commits.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // pop's tables are small and the kernel caches the file: 512 KiB of page cache per connection (SQLite's
            // default is 2 MiB, and a pool has up to five connections) keeps a long-running agent small.
            try db.execute(sql: "PRAGMA cache_size = -512")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(checkpointFrames)")
            if mapsFile { try db.execute(sql: "PRAGMA mmap_size = \(mappedBytes)") }
        }
        let (database, readOnlyReason) = try openDatabase(
            path: path, configuration: configuration, connections: options.connections)
        let position: Int64
        do {
            let clock = SessionClock.now()
            let (schema, found, expired) = try await database.read { db in
                let schema = try NodeTable.schemaState(db, file: path)
                guard schema == .current else { return (schema, Int64(0), false) }
                return (
                    schema, try NodeTable.position(db),
                    try NodeTable.hasExpiredSessions(db, bootID: SessionClock.bootID, clock: clock)
                )
            }
            position = found
            switch schema {
            case .current:
                if expired, readOnlyReason == nil {
                    try? await reapAtOpen(database, path: path, options: options)
                }
            case .missing:
                guard readOnlyReason == nil else {
                    throw PopError(
                        .system, "The embedded store \(path) is empty and cannot be written: \(readOnlyReason!).",
                        hint: "Free space on the disk holding it, or check that its folder is writable.")
                }
                try await database.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        try NodeTable.migrate(db, file: path)
                        return .commit
                    }
                }
            }
        } catch {
            try? database.close()
            throw mapError(error, file: path)
        }
        let monitor = try makeChangeMonitor(folder: (path as NSString).deletingLastPathComponent, fileName: commitFileName)
        let commitFile = try PrivateFiles.openForWriting(commitPath)
        let store = EmbeddedStore(
            path: path, database: database, position: position, monitor: monitor, commitFile: commitFile,
            readOnlyReason: readOnlyReason, options: options)
        options.logger.debug(
            "opened the embedded store",
            metadata: ["store.path": "\(path)", "store.readOnly": "\(readOnlyReason ?? "no")"])
        return store
    }

    /// Opens the database with the connections asked for; when it cannot be opened for writing, opens it for reading
    /// only (as a pool) and says why.
    ///
    /// Opening for writing needs the write-ahead log and its shared-memory index, which SQLite creates when they are
    /// missing (after the last handle closed), and GRDB writes a first page into an empty log. On a full disk that
    /// fails; the database is then read as it is. When the log is missing or empty the database file holds
    /// everything, and it is opened immutable (no lock, no shared memory), which needs no space at all.
    static func openDatabase(
        path: String, configuration: Configuration, connections: Connections
    ) throws -> (any DatabaseWriter, String?) {
        if connections == .single, let queue = openSingle(path: path, configuration: configuration) {
            return (queue, nil)
        }
        do {
            return (try DatabasePool(path: path, configuration: configuration), nil)
        } catch let error as DatabaseError where cannotWrite(error) && fileSize(path) > 0 {
            var readOnly = configuration
            readOnly.readonly = true
            let reason = error.message ?? "\(error.resultCode)"
            let logIsEmpty = fileSize(path + "-wal") == 0
            let target = logIsEmpty ? "file:" + uriEscaped(path) + "?mode=ro&immutable=1" : path
            do {
                return (try DatabasePool(path: target, configuration: readOnly), reason)
            } catch {
                throw mapError(error, file: path)
            }
        } catch {
            throw mapError(error, file: path)
        }
    }

    /// One connection to a database already in WAL mode (the mode is kept in the file), or `nil`: for a new or
    /// empty file, a database in another mode, or any failure, the pool's path sets the mode up, falls back to reading
    /// only, or reports the error.
    private static func openSingle(path: String, configuration: Configuration) -> DatabaseQueue? {
        guard fileSize(path) > 0, let queue = try? DatabaseQueue(path: path, configuration: configuration) else {
            return nil
        }
        let mode = try? queue.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        if mode == "wal" { return queue }
        try? queue.close()
        return nil
    }

    /// Whether SQLite failed for want of space or of write permission, rather than for bad data.
    private static func cannotWrite(_ error: DatabaseError) -> Bool {
        switch error.resultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM: true
        default: false
        }
    }

    /// The size of the file at `path`, 0 when there is none.
    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// `path` escaped for an SQLite URI filename.
    private static func uriEscaped(_ path: String) -> String {
        var escaped = ""
        for character in path {
            switch character {
            case "%": escaped += "%25"
            case "?": escaped += "%3f"
            case "#": escaped += "%23"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// Reaps the sessions that expired while no handle was open, when opening.
    private static func reapAtOpen(_ database: any DatabaseWriter, path: String, options: Options) async throws {
        let reaped = try await database.writeWithoutTransaction { db -> [Int64] in
            var reaped: [Int64] = []
            try db.inTransaction(.immediate) {
                reaped = try NodeTable.reapExpiredSessions(
                    db, bootID: SessionClock.bootID, clock: SessionClock.now(), now: wallMilliseconds())
                return .commit
            }
            return reaped
        }
        guard !reaped.isEmpty else { return }
        // Reaped sessions may have deleted nodes others watch.
        let commitFile = try PrivateFiles.openForWriting(path + "-commit")
        PrivateFiles.touch(commitFile)
        PrivateFiles.closeDescriptor(commitFile)
        options.logger.info("reaped expired sessions and their ephemeral nodes", metadata: ["store.sessions": "\(reaped)"])
    }

    private init(
        path: String, database: any DatabaseWriter, position: Int64, monitor: any ChangeMonitor, commitFile: Int32,
        readOnlyReason: String?, options: Options
    ) {
        self.databasePath = path
        self.database = database
        self.registry = WatchRegistry(position: position)
        self.monitor = monitor
        self.commitFile = commitFile
        self.readOnlyReason = readOnlyReason
        self.options = options
        self.lifecycle = Mutex(Lifecycle())
    }

    deinit {
        monitor.close()
        PrivateFiles.closeDescriptor(commitFile)
        try? database.close()
    }

    // MARK: Session

    public func sessionEvents() -> AsyncStream<SessionEvent> {
        let (stream, continuation) = AsyncStream<SessionEvent>.makeStream(bufferingPolicy: .unbounded)
        let token: Int? = lifecycle.withLock { state in
            switch state.phase {
            case .open:
                continuation.yield(state.reachable ? .connected : .disconnected)
                let token = state.nextSubscriber
                state.nextSubscriber += 1
                state.subscribers[token] = continuation
                return token
            case .expired:
                continuation.yield(.expired)
            case .closed:
                continuation.yield(.closed)
            }
            continuation.finish()
            return nil
        }
        if let token {
            continuation.onTermination = { [weak self] _ in
                _ = self?.lifecycle.withLock { $0.subscribers.removeValue(forKey: token) }
            }
        }
        return stream
    }

    public func releaseCaches() async {
        // A command's single connection is closed soon anyway.
        guard let pool = database as? DatabasePool else { return }
        // Each connection frees its page cache on its own queue, waiting for what it is doing (the readers stay open:
        // `persistentReadOnlyConnections`). That waits, so it runs on a dispatch thread, not on the caller's.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                pool.releaseMemory()
                continuation.resume()
            }
        }
    }

    /// The bytes of page cache the writer's connection holds (SQLite's `SQLITE_DBSTATUS_CACHE_USED`).
    func writerCacheBytes() async throws -> Int {
        try await database.writeWithoutTransaction { db in
            var used: Int32 = 0
            var highest: Int32 = 0
            sqlite3_db_status(db.sqliteConnection, SQLITE_DBSTATUS_CACHE_USED, &used, &highest, 0)
            return Int(used)
        }
    }

    /// The pages the writer's connection read while `body` ran, its cache emptied first (SQLite's
    /// `SQLITE_DBSTATUS_CACHE_MISS`).
    func writerPagesRead(_ body: @escaping @Sendable (Database) throws -> Void) async throws -> Int {
        try await database.writeWithoutTransaction { db in
            sqlite3_db_release_memory(db.sqliteConnection)
            var misses: Int32 = 0
            var highest: Int32 = 0
            sqlite3_db_status(db.sqliteConnection, SQLITE_DBSTATUS_CACHE_MISS, &misses, &highest, 1)
            try body(db)
            sqlite3_db_status(db.sqliteConnection, SQLITE_DBSTATUS_CACHE_MISS, &misses, &highest, 0)
            return Int(misses)
        }
    }

    public func close() async {
        let wasOpen = lifecycle.withLock { state in
            defer { if state.phase == .open { state.phase = .closed } }
            return state.phase == .open
        }
        let (session, wrote) = lifecycle.withLock { ($0.session, $0.wrote) }
        if wasOpen {
            if let session {
                do {
                    try await database.writeWithoutTransaction { db in
                        try db.inTransaction(.immediate) {
                            try NodeTable.deleteSession(db, session, now: Self.wallMilliseconds())
                            return .commit
                        }
                    }
                    signalCommit()
                } catch {
                    options.logger.warning(
                        "could not delete the session when closing; it will expire",
                        metadata: ["store.session": "\(session)", "error": "\(error)"])
                }
            }
            if wrote { checkpoint() }
            end(.closed)
        }
        monitor.interrupt()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = lifecycle.withLock { state in
                if !state.loopExited { state.exitWaiters.append(continuation) }
                return state.loopExited
            }
            if exited { continuation.resume() }
        }
    }

    /// For a command that exits next. A handle with no session, no watch and no subscriber has nothing another
    /// process would see closed, and no thread: it is only marked closed. Any other handle is closed as ``close()``
    /// closes it: its session and ephemeral nodes are deleted, what it wrote is checkpointed, its dispatcher stops.
    /// Either way its connections are left to the process's exit, since closing them (SQLite's close, GRDB's
    /// teardown) costs a command about a millisecond more than exiting does.
    public func closeBeforeExit() async {
        let idle = lifecycle.withLock { state -> Bool in
            guard state.phase == .open, state.session == nil, !state.watching, !state.dispatcherStarted,
                state.subscribers.isEmpty
            else { return false }
            state.phase = .closed
            return true
        }
        if !idle { await close() }
        Self.closedBeforeExit.withLock { $0.append(self) }
    }

    /// The handles ``closeBeforeExit()`` left open for the process's exit.
    private static let closedBeforeExit = Mutex<[EmbeddedStore]>([])

    /// Ends the session: fails every watch and tells session subscribers.
    func end(_ event: SessionEvent) {
        let error = sessionEndedError(event)
        let subscribers = lifecycle.withLock { state -> [AsyncStream<SessionEvent>.Continuation] in
            if event == .expired, state.phase == .open { state.phase = .expired }
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        registry.end(error)
        for subscriber in subscribers {
            subscriber.yield(event)
            subscriber.finish()
        }
        monitor.interrupt()
        if event == .expired {
            options.logger.warning(
                "the embedded store session expired", metadata: ["store.session": "\(sessionID)"])
        }
    }

    func sessionEndedError(_ event: SessionEvent) -> PopError {
        if event == .expired {
            return PopError(
                .storeUnreachable,
                "The session \(sessionID) of the \(description) expired: its heartbeats stopped for longer than \(options.sessionTimeout.milliseconds) ms, so its ephemeral nodes were deleted.",
                hint: "Open the store again.")
        }
        return PopError(.storeUnreachable, "The session \(sessionID) of the \(description) is closed.")
    }

    /// Stops this handle's heartbeats, as if its process hung, so that its session expires (for tests).
    package func suspendHeartbeats() {
        lifecycle.withLock { $0.heartbeatsSuspended = true }
    }

    func checkOpen() throws(PopError) {
        let phase = lifecycle.withLock { $0.phase }
        switch phase {
        case .open: return
        case .expired: throw sessionEndedError(.expired)
        case .closed: throw sessionEndedError(.closed)
        }
    }

    func setReachable(_ reachable: Bool) {
        let subscribers = lifecycle.withLock { state -> [AsyncStream<SessionEvent>.Continuation] in
            guard state.phase == .open, state.reachable != reachable else { return [] }
            state.reachable = reachable
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.yield(reachable ? .reconnected : .disconnected) }
    }

    // MARK: Transactions

    /// Runs `body` in an IMMEDIATE transaction with this handle's session, then wakes watchers.
    ///
    /// The first write also creates the session, in the same transaction (so a write that fails leaves none); later
    /// ones check that it is still alive (an expired session cannot write, and so cannot leave orphan ephemerals).
    /// `body` gets the time and the session's id.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database, Int64, Int64) throws -> T) async throws -> T {
        try checkOpen()
        if let readOnlyReason {
            throw PopError(
                .system, "The \(description) can only be read: it could not be opened for writing (\(readOnlyReason)).",
                hint: "Free space on the disk holding it, or check that its folder is writable, then retry.")
        }
        let timeout = options.sessionTimeout.milliseconds
        do {
            let (value, created) = try await database.writeWithoutTransaction { db -> (T, Bool) in
                // The writer runs one block at a time, so two first writes cannot both create a session.
                var session = self.lifecycle.withLock { $0.session }
                var created = false
                var value: T?
                try db.inTransaction(.immediate) {
                    if let session {
                        guard try NodeTable.sessionExists(db, session) else { throw SessionGone() }
                    } else {
                        session = try NodeTable.createSession(
                            db, bootID: SessionClock.bootID, timeoutMilliseconds: timeout, clock: SessionClock.now(),
                            now: Self.wallMilliseconds())
                        created = true
                    }
                    value = try body(db, Self.wallMilliseconds(), session!)
                    return .commit
                }
                self.lifecycle.withLock { state in
                    state.wrote = true
                    if created { state.session = session }
                }
                return (value!, created)
            }
            signalCommit()
            if created {
                // The dispatcher starts the session's heartbeats.
                startDispatcher()
                options.logger.debug("started a session", metadata: ["store.session": "\(sessionID)"])
            }
            return value
        } catch is SessionGone {
            end(.expired)
            throw sessionEndedError(.expired)
        } catch {
            throw Self.mapError(error, file: databasePath)
        }
    }

    /// Copies what the write-ahead log holds into the database file, without waiting for readers; a failure (a full
    /// disk) is logged and changes nothing.
    func checkpoint() {
        do {
            _ = try database.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        } catch {
            options.logger.debug("could not checkpoint the write-ahead log", metadata: ["error": "\(error)"])
        }
    }

    /// Runs `body` in a read transaction (a consistent snapshot).
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await database.read(body)
        } catch {
            throw Self.mapError(error, file: databasePath)
        }
    }

    /// Starts watching for commits; the first watch also starts the dispatcher's beats.
    func activateWatching() throws(PopError) {
        try monitor.activate()
        let first = lifecycle.withLock { state in
            defer { state.watching = true }
            return !state.watching
        }
        if first { startDispatcher() }
    }

    /// Starts the dispatcher's thread at its first need (a session's heartbeats, the first watch), or wakes it to
    /// look at what changed: a handle that only reads, as most commands' do, never starts one.
    func startDispatcher() {
        let start = lifecycle.withLock { state -> Bool in
            guard !state.dispatcherStarted, state.phase == .open else { return false }
            state.dispatcherStarted = true
            state.loopExited = false
            return true
        }
        guard start else { return monitor.interrupt() }
        let thread = Thread { self.dispatchLoop() }
        thread.name = "pop.store.dispatch"
        thread.start()
    }

    func signalCommit() {
        PrivateFiles.touch(commitFile)
    }

    struct SessionGone: Error {}

    static func wallMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    static func mapError(_ error: any Error, file: String) -> PopError {
        if let error = error as? PopError { return error }
        guard let error = error as? DatabaseError else {
            return PopError(.system, "The \("embedded store \(file)") failed: \(error).")
        }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return PopError(
                .storeUnreachable, "The embedded store \(file) stayed locked by another process beyond the busy timeout.",
                hint: "Check for a hung pop process holding it.")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return PopError(
                .corruptState, "The embedded store \(file) is damaged: \(error.message ?? "\(error)").",
                hint: "Move the file away and run `pop init` to start afresh.")
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
            return PopError(
                .permissionDenied, "Cannot open the embedded store \(file) for writing: \(error.message ?? "\(error)").")
        case .SQLITE_FULL, .SQLITE_IOERR:
            return PopError(
                .system, "Cannot write the embedded store \(file): \(error.message ?? "\(error)").",
                hint: "Free space on the disk holding it; commands that only read (status, dump, machines, logs) still work.")
        default:
            return PopError(.system, "The embedded store \(file) failed: \(error.message ?? "\(error)").")
        }
    }
}

extension Duration {
    /// The duration in whole milliseconds.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
