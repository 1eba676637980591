import PopState
import Synchronization

/// The persistent watches one agent session holds, merged into one stream of events.
///
/// An agent follows only what concerns its machine: the list of services, the machine registrations, and for every
/// service its spec, its packages, this machine's placement and its task requests. So a write of another machine's
/// instance record reaches no agent but the ones that asked for it (a service in a rollout waits on its peers'
/// records), and a cluster's watch traffic grows with the machines, not with machines × instances.
///
/// On a store whose clients all run on this machine (the embedded store) there is no fan-out to save, and one subtree
/// watch of the namespace is cheaper than thousands of narrow ones: ``wholeNamespace`` says which way a session works.
///
/// Every watch delivers into ``events`` (``CoordinationStore/addWatch(_:subtree:into:)``). Dropping a watch
/// (``drop(where:)``) stops its deliveries; ending the session (``finish()``) drops them all. When the store's session
/// expires or is closed, ``events`` ends with that error.
final class SessionWatches: Sendable {
    /// A watched path and whether its whole subtree is followed.
    struct Key: Hashable, Sendable, CustomStringConvertible {
        var path: String
        var subtree: Bool

        static func node(_ path: String) -> Key { Key(path: path, subtree: false) }
        static func subtree(_ path: String) -> Key { Key(path: path, subtree: true) }

        var description: String { subtree ? "\(path)/**" : path }
    }

    /// Every event of every watch, in the order each watch delivered them.
    let events: NodeEvents
    private let continuation: NodeEvents.Continuation
    private let store: any CoordinationStore
    private let handles = Mutex<[Key: WatchHandle]>([:])
    private let finished = Atomic<Bool>(false)

    /// Whether the session follows the whole namespace with one subtree watch (on a store only this machine uses)
    /// instead of what concerns this machine (see ``AgentConfiguration/followsWholeNamespace``).
    let wholeNamespace: Bool

    init(store: any CoordinationStore, wholeNamespace: Bool) {
        self.store = store
        self.wholeNamespace = wholeNamespace
        (events, continuation) = NodeEvents.makeStream(bufferingPolicy: .unbounded)
    }

    /// The paths watched now.
    var keys: Set<Key> { handles.withLock { Set($0.keys) } }

    /// Sets the watches in `keys` that are not set yet, concurrently; returns once the store has set every one, so a
    /// read made afterwards misses no change. Every watch delivers into ``events`` directly: no task or buffer per
    /// watch.
    func add(_ keys: some Sequence<Key>) async throws {
        let missing = handles.withLock { handles in Set(keys).subtracting(handles.keys) }
        guard !missing.isEmpty else { return }
        try await withThrowingTaskGroup(of: (Key, WatchHandle).self) { group in
            for key in missing {
                group.addTask { [store, continuation] in
                    (key, try await store.addWatch(key.path, subtree: key.subtree, into: continuation))
                }
            }
            for try await (key, handle) in group {
                keep(handle, as: key)
            }
        }
    }

    /// Stops following the watches whose key matches.
    func drop(where matches: (Key) -> Bool) {
        let dropped = handles.withLock { handles -> [WatchHandle] in
            let keys = handles.keys.filter(matches)
            return keys.compactMap { handles.removeValue(forKey: $0) }
        }
        for handle in dropped { handle.cancel() }
    }

    /// Drops every watch and ends ``events``.
    func finish() {
        finished.store(true, ordering: .sequentiallyConsistent)
        drop { _ in true }
        continuation.finish()
    }

    private func keep(_ handle: WatchHandle, as key: Key) {
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
