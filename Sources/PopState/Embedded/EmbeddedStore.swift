import Foundation
import GRDB
import Logging
import Synchronization

/// The single-machine ``CoordinationStore``: a SQLite database (WAL mode) shared by every pop process on the machine.
///
/// - Every write is one IMMEDIATE transaction (writers wait up to the busy timeout for each other) that also appends
///   to a change log, whose ids are strictly increasing and gap-free in commit order.
/// - After each commit the writer touches a commit file next to the database. Every handle runs one dispatcher
///   thread that sleeps on a ``ChangeMonitor`` of that file (inotify), wakes when it is touched, reads the new
///   change-log rows and fires its watches. An idle handle's thread sleeps until its next heartbeat.
/// - A handle owns a session row, renewed by a heartbeat every third of the session timeout from the same thread.
///   At every heartbeat and when opening, a handle deletes the sessions whose heartbeats stopped for their timeout
///   (and their ephemeral nodes), so expired sessions are reaped by whichever pop process runs next.
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

        /// Creates options.
        public init(
            sessionTimeout: Duration = .seconds(10), busyTimeout: Duration = .seconds(5),
            changeLogRetention: Duration = .seconds(600), logger: Logger = Logger(label: "pop.store.embedded")
        ) {
            self.sessionTimeout = sessionTimeout
            self.busyTimeout = busyTimeout
            self.changeLogRetention = changeLogRetention
            self.logger = logger
        }
    }

    /// The database file name inside the store folder.
    public static let databaseName = "store.sqlite"
    /// The file touched after every commit, whose changes wake watchers in every process.
    public static let commitFileName = "store.sqlite-commit"

    /// The database file.
    public let databasePath: String
    /// The session this handle owns.
    public let sessionID: Int64
    /// `embedded store <database path>`.
    public var description: String { "embedded store \(databasePath)" }

    let pool: DatabasePool
    let registry: WatchRegistry
    let monitor: any ChangeMonitor
    let commitFile: Int32
    let options: Options
    let lifecycle: Mutex<Lifecycle>

    struct Lifecycle {
        enum Phase { case open, expired, closed }
        var phase: Phase = .open
        var reachable = true
        var subscribers: [Int: AsyncStream<SessionEvent>.Continuation] = [:]
        var nextSubscriber = 0
        var loopExited = false
        var heartbeatsSuspended = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Opens (creating if needed) the store in `folder` and starts a session.
    ///
    /// The folder is created 0700 and the files 0600; a folder others can write is refused.
    public static func open(folder: String, options: Options = Options()) async throws -> EmbeddedStore {
        try PrivateFiles.ensureFolder(folder)
        let path = folder.hasSuffix("/") ? folder + databaseName : folder + "/" + databaseName
        let commitPath = path + "-commit"
        try PrivateFiles.ensureFile(path)
        try PrivateFiles.ensureFile(commitPath)

        var configuration = Configuration()
        configuration.busyMode = .timeout(TimeInterval(options.busyTimeout.milliseconds) / 1000)
        configuration.maximumReaderCount = 4
        configuration.label = "pop.store"
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL survives a process crash; a power loss may lose the last commits.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // pop's tables are small and the kernel caches the file: 512 KiB of page cache per connection (SQLite's
            // default is 2 MiB, and a pool has up to five connections) keeps a long-running agent small.
            try db.execute(sql: "PRAGMA cache_size = -512")
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw mapError(error, file: path)
        }
        let timeout = options.sessionTimeout.milliseconds
        let (session, position): (Int64, Int64)
        do {
            (session, position) = try await pool.writeWithoutTransaction { db in
                var result: (Int64, Int64) = (0, 0)
                try db.inTransaction(.immediate) {
                    try NodeTable.migrate(db, file: path)
                    let clock = SessionClock.now()
                    let now = wallMilliseconds()
                    _ = try NodeTable.reapExpiredSessions(db, bootID: SessionClock.bootID, clock: clock, now: now)
                    let session = try NodeTable.createSession(
                        db, bootID: SessionClock.bootID, timeoutMilliseconds: timeout, clock: clock, now: now)
                    result = (session, try NodeTable.position(db))
                    return .commit
                }
                return result
            }
        } catch {
            try? pool.close()
            throw mapError(error, file: path)
        }
        let monitor = try makeChangeMonitor(folder: (path as NSString).deletingLastPathComponent, fileName: commitFileName)
        let commitFile = try PrivateFiles.openForWriting(commitPath)
        let store = EmbeddedStore(
            path: path, pool: pool, session: session, position: position, monitor: monitor, commitFile: commitFile,
            options: options)
        store.signalCommit()  // Reaped sessions may have deleted nodes others watch.
        let thread = Thread { store.dispatchLoop() }
        thread.name = "pop.store.dispatch"
        thread.start()
        options.logger.debug(
            "opened the embedded store", metadata: ["store.path": "\(path)", "store.session": "\(session)"])
        return store
    }

    private init(
        path: String, pool: DatabasePool, session: Int64, position: Int64, monitor: any ChangeMonitor,
        commitFile: Int32, options: Options
    ) {
        self.databasePath = path
        self.pool = pool
        self.sessionID = session
        self.registry = WatchRegistry(position: position)
        self.monitor = monitor
        self.commitFile = commitFile
        self.options = options
        self.lifecycle = Mutex(Lifecycle())
    }

    deinit {
        monitor.close()
        PrivateFiles.closeDescriptor(commitFile)
        try? pool.close()
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

    public func close() async {
        let wasOpen = lifecycle.withLock { state in
            defer { if state.phase == .open { state.phase = .closed } }
            return state.phase == .open
        }
        if wasOpen {
            let session = sessionID
            do {
                try await pool.writeWithoutTransaction { db in
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

    /// Runs `body` in an IMMEDIATE transaction after checking that the session is alive, then wakes watchers.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database, Int64) throws -> T) async throws -> T {
        try checkOpen()
        let session = sessionID
        do {
            let value = try await pool.writeWithoutTransaction { db -> T in
                var value: T?
                try db.inTransaction(.immediate) {
                    guard try NodeTable.sessionExists(db, session) else { throw SessionGone() }
                    value = try body(db, Self.wallMilliseconds())
                    return .commit
                }
                return value!
            }
            signalCommit()
            return value
        } catch is SessionGone {
            end(.expired)
            throw sessionEndedError(.expired)
        } catch {
            throw Self.mapError(error, file: databasePath)
        }
    }

    /// Runs `body` in a read transaction (a consistent snapshot).
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await pool.read(body)
        } catch {
            throw Self.mapError(error, file: databasePath)
        }
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
            return PopError(.system, "Cannot write the embedded store \(file): \(error.message ?? "\(error)").")
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
