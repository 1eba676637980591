extension PopNamespace {
    /// Reads with `read` until `done` holds for what it read, woken by the store's changes at `path` and below; nil
    /// when `deadline` passes first.
    ///
    /// The watch is set before the first read, so no change is missed. However many changes arrive while a read runs,
    /// they cost one more read, never one per change (``CoordinationStore/changes(under:)``): an agent publishing a
    /// hundred instances at once wakes `pop status --wait` a couple of times, not a hundred. Nothing polls.
    public func read<T: Sendable>(
        _ read: @escaping @Sendable () async throws -> T, until done: @escaping @Sendable (T) -> Bool,
        wokenByChangesUnder path: String, deadline: ContinuousClock.Instant
    ) async throws -> T? {
        let changes = try await store.changes(under: path)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                var latest = try await read()
                if done(latest) { return latest }
                for try await _ in changes {
                    latest = try await read()
                    if done(latest) { return latest }
                }
                throw PopError(.storeUnreachable, "The store's watch of \(path) ended.", path: path)
            }
            group.addTask {
                try await Task.sleep(until: deadline)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}
