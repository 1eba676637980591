import ZooKeeperNIO

extension ZooKeeperStore {
    /// Removes every watch this session holds on `path` from the server, persistent ones included.
    ///
    /// Cancelling a persistent watch (``WatchHandle/cancel()``) stops its deliveries in this process only: the server
    /// keeps the watch, and keeps sending its events, until the session ends. A reader that follows a subtree only
    /// for a while (the dashboard, while a page is open) calls this once it has stopped, so that nothing is watched,
    /// sent or decoded while nobody looks. Having no watch there is not an error.
    public func removeServerWatches(at path: String) async throws {
        do {
            try await client.removeWatches(path, type: .persistentRecursive)
        } catch let error as ZooKeeperError where error.code == .noWatcher {
            return
        } catch let error as ZooKeeperError {
            throw Self.translate(error, path: path, label: description, identity: identity)
        }
    }
}
