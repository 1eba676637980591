import PopState

extension Agent {
    /// One store session's task: opens the store and checks pop's layout, reports the session (or why it could not be
    /// opened), then forwards its watch and connection events until `stop` ends. The store handle is closed before the
    /// task returns, even when it is cancelled, so the session's ephemeral nodes go at once rather than when it
    /// expires (and store work still in flight fails at once).
    func runSession(_ epoch: Int, until stop: AsyncStream<Void>, reporting inbox: AgentInbox) async {
        let store: any CoordinationStore
        do {
            store = try await openStore()
        } catch {
            inbox.yield(.event(.sessionFailed(error), epoch: epoch))
            return
        }
        let namespace: PopNamespace
        do {
            namespace = try PopNamespace(store: store, prefix: configuration.prefix)
            try await namespace.checkLayout()
        } catch {
            await Self.close(store)
            inbox.yield(.event(.sessionFailed(error), epoch: epoch))
            return
        }
        let watches = SessionWatches(store: store)
        let connection = store.sessionEvents()
        inbox.yield(.opened(SessionHandle(epoch: epoch, namespace: namespace, watches: watches, machine: machine)))
        sessions.lend(store)
        await withDiscardingTaskGroup { group in
            group.addTask {
                do {
                    for try await event in watches.events {
                        inbox.yield(.event(.storeChanged(event), epoch: epoch))
                    }
                    inbox.yield(.event(.sessionFailed(PopError(.storeUnreachable, "The store's watch ended.")), epoch: epoch))
                } catch {
                    inbox.yield(.event(.sessionFailed(error), epoch: epoch))
                }
            }
            group.addTask {
                for await event in connection {
                    inbox.yield(.event(.sessionChanged(event), epoch: epoch))
                }
            }
            for await _ in stop {}
            sessions.withdraw()
            group.cancelAll()
            watches.finish()
            await Self.close(store)
        }
    }

    /// Closes a store handle even when the calling task is cancelled (as it is at shutdown).
    static func close(_ store: any CoordinationStore) async {
        await Task { await store.close() }.value
    }
}
