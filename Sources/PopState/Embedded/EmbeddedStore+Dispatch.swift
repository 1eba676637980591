import GRDB
#if canImport(GRDBSQLite)
import GRDBSQLite
#else
import SQLite3
#endif

extension EmbeddedStore {
    /// The dispatcher thread: sleeps on the commit-file monitor, reads new change-log rows and fires watches, and,
    /// once the handle has a session or a watch, beats every third of the session timeout: it renews the session and
    /// reaps expired ones. It is the handle's only timer; a handle with neither sleeps until it is interrupted.
    func dispatchLoop() {
        let interval = max(10, options.sessionTimeout.milliseconds / 3)
        var nextHeartbeat: Int64?
        while isOpen {
            if nextHeartbeat == nil, lifecycle.withLock({ $0.session != nil || $0.watching }) {
                nextHeartbeat = SessionClock.now() + interval
            }
            let wake = monitor.wait(timeoutMilliseconds: nextHeartbeat.map { Int(max(0, $0 - SessionClock.now())) })
            guard isOpen else { break }
            switch wake {
            case .changed, .timeout: readChanges()
            case .unrelated, .interrupted: break
            }
            if let deadline = nextHeartbeat, SessionClock.now() >= deadline {
                if !lifecycle.withLock({ $0.heartbeatsSuspended }) { heartbeat() }
                nextHeartbeat = SessionClock.now() + interval
            }
        }
        let waiters = lifecycle.withLock { state in
            state.loopExited = true
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { lifecycle.withLock { $0.phase == .open } }

    /// Reads every change-log row after the registry's position and dispatches it.
    func readChanges() {
        let batchSize = 2000
        while true {
            let position = registry.position
            let batch: [ChangeRecord]
            do {
                batch = try database.read { db in try NodeTable.changes(db, after: position, limit: batchSize) }
            } catch {
                options.logger.warning("could not read the change log", metadata: ["error": "\(error)"])
                setReachable(false)
                return
            }
            if let first = batch.first, first.id != position + 1 {
                // The log was trimmed past this handle (it was stopped for minutes): changes were lost, so the
                // session ends, as a ZooKeeper session would, and its owner starts afresh.
                options.logger.error(
                    "the change log was trimmed past this handle; ending its session",
                    metadata: ["store.position": "\(position)", "store.oldest": "\(first.id)"])
                end(.expired)
                return
            }
            registry.dispatch(batch)
            if batch.count < batchSize { return }
        }
    }

    /// Renews the session, reaps expired sessions and trims the change log, in one transaction. A handle without a
    /// session (it only reads and watches) writes only when there are expired sessions to reap, so that a watcher
    /// still sees a dead process's ephemerals go.
    func heartbeat() {
        guard let session = lifecycle.withLock({ $0.session }) else {
            reapExpiredSessions()
            return
        }
        let retention = options.changeLogRetention.milliseconds
        let position = registry.position
        do {
            let (alive, reaped) = try database.writeWithoutTransaction { db -> (Bool, [Int64]) in
                var result: (Bool, [Int64]) = (false, [])
                try db.inTransaction(.immediate) {
                    let clock = SessionClock.now()
                    let now = Self.wallMilliseconds()
                    guard try NodeTable.heartbeat(db, session: session, clock: clock) else { return .commit }
                    let reaped = try NodeTable.reapExpiredSessions(
                        db, bootID: SessionClock.bootID, clock: clock, now: now)
                    try NodeTable.trimChanges(db, before: now - retention, upTo: position)
                    result = (true, reaped)
                    return .commit
                }
                // Trimming the change log reads the pages of the rows it deletes; a long-running handle would keep
                // them in its writer's cache until it wrote again. Its next write reads what it needs from the file.
                sqlite3_db_release_memory(db.sqliteConnection)
                return result
            }
            setReachable(true)
            if !reaped.isEmpty {
                signalCommit()
                options.logger.info(
                    "reaped expired sessions and their ephemeral nodes", metadata: ["store.sessions": "\(reaped)"])
            }
            if !alive { end(.expired) }
        } catch {
            options.logger.warning(
                "heartbeat failed", metadata: ["store.session": "\(session)", "error": "\(error)"])
            setReachable(false)
        }
    }

    /// Reaps the expired sessions, if there are any, for a handle that has no session of its own; a failure (a full
    /// disk) is logged and retried at the next beat.
    func reapExpiredSessions() {
        do {
            let clock = SessionClock.now()
            let expired = try database.read { db in
                try NodeTable.hasExpiredSessions(db, bootID: SessionClock.bootID, clock: clock)
            }
            guard expired, readOnlyReason == nil else { return }
            let reaped = try database.writeWithoutTransaction { db -> [Int64] in
                var reaped: [Int64] = []
                try db.inTransaction(.immediate) {
                    reaped = try NodeTable.reapExpiredSessions(
                        db, bootID: SessionClock.bootID, clock: SessionClock.now(), now: Self.wallMilliseconds())
                    return .commit
                }
                return reaped
            }
            if !reaped.isEmpty {
                signalCommit()
                options.logger.info(
                    "reaped expired sessions and their ephemeral nodes", metadata: ["store.sessions": "\(reaped)"])
            }
        } catch {
            options.logger.debug("could not reap expired sessions", metadata: ["error": "\(error)"])
        }
    }
}
