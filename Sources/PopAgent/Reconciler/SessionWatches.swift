import PopState
import Synchronization

/// The persistent watches one store session holds, merged into one stream of events.
///
/// Which paths are watched is the core's decision (``AgentStateMachine``): on a store shared by many machines, only
/// what concerns this machine; on a machine-local store, the whole namespace with one subtree watch. This type only
/// holds the store's watch handles.
///
/// Every watch delivers into ``events`` (``CoordinationStore/addWatch(_:subtree:into:)``): no task or buffer per
/// watch. Dropping a watch (``drop(_:)``) stops its deliveries; ending the session (``finish()``) drops them all. When
/// the store's session expires or is closed, ``events`` ends with that error.
final class SessionWatches: Sendable {
    /// Every event of every watch, in the order each watch delivered them.
    let events: NodeEvents
    private let continuation: NodeEvents.Continuation
    private let store: any CoordinationStore
    private let handles = Mutex<[WatchKey: WatchHandle]>([:])
    private let finished = Atomic<Bool>(false)

    init(store: any CoordinationStore) {
        self.store = store
        (events, continuation) = NodeEvents.makeStream(bufferingPolicy: .unbounded)
    }

    /// The paths watched now.
    var keys: Set<WatchKey> { handles.withLock { Set($0.keys) } }

    /// Sets the watches in `keys` that are not set yet, together (on ZooKeeper, one request for all of them); returns
    /// once the store has set every one, so a read made afterwards misses no change.
    func add(_ keys: some Sequence<WatchKey>) async throws {
        let missing = handles.withLock { handles in Set(keys).subtracting(handles.keys) }.sorted()
        guard !missing.isEmpty else { return }
        let set = try await store.addWatches(missing.map { ($0.path, $0.subtree) }, into: continuation)
        for (key, handle) in zip(missing, set) { keep(handle, as: key) }
    }

    /// Stops following these watches.
    func drop(_ keys: Set<WatchKey>) {
        let dropped = handles.withLock { handles in keys.compactMap { handles.removeValue(forKey: $0) } }
        for handle in dropped { handle.cancel() }
    }

    /// Drops every watch and ends ``events``.
    func finish() {
        finished.store(true, ordering: .sequentiallyConsistent)
        let dropped = handles.withLock { handles in
            defer { handles = [:] }
            return Array(handles.values)
        }
        for handle in dropped { handle.cancel() }
        continuation.finish()
    }

    private func keep(_ handle: WatchHandle, as key: WatchKey) {
        let replaced = handles.withLock { handles -> WatchHandle? in
            // Checked under the lock that finish() drops under: a watch set after the end is not kept.
            if finished.load(ordering: .sequentiallyConsistent) { return handle }
            let old = handles[key]
            handles[key] = handle
            return old
        }
        replaced?.cancel()
    }
}
