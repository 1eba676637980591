import GRDB

extension EmbeddedStore {
    /// The dispatcher thread: sleeps on the commit-file monitor, reads new change-log rows and fires watches, and
    /// renews the session every third of its timeout. It is the handle's only timer.
    func dispatchLoop() {
        let interval = max(10, options.sessionTimeout.milliseconds / 3)
        var nextHeartbeat = SessionClock.now() + interval
        while isOpen {
            let wake = monitor.wait(timeoutMilliseconds: Int(max(0, nextHeartbeat - SessionClock.now())))
            guard isOpen else { break }
            switch wake {
            case .changed, .timeout: readChanges()
            case .unrelated, .interrupted: break
            }
            if SessionClock.now() >= nextHeartbeat {
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
                batch = try pool.read { db in try NodeTable.changes(db, after: position, limit: batchSize) }
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

    /// Renews the session, reaps expired sessions and trims the change log, in one transaction.
    func heartbeat() {
        let session = sessionID
        let retention = options.changeLogRetention.milliseconds
        let position = registry.position
        do {
            let (alive, reaped) = try pool.writeWithoutTransaction { db -> (Bool, [Int64]) in
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
}
