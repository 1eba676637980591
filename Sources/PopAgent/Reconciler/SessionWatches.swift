import PopState
import Synchronization

/// The persistent watches one agent session holds, merged into one stream of events.
///
/// An agent follows only what concerns its machine: the list of services, the machine registrations, and for every
/// service its spec, its packages, this machine's placement and its task requests. So a write of another machine's
/// instance record reaches no agent but the ones that asked for it (a service in a rollout waits on its peers'
/// records), and a cluster's watch traffic grows with the machines, not with machines × instances.
///
/// Each watch forwards its events into ``events``. Dropping a watch (``drop(where:)``) stops forwarding; ending the
/// session (``finish()``) drops them all. A watch the store ends (the session expired or was closed) ends ``events``
/// with that error.
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
    private let forwarders = Mutex<[Key: Task<Void, Never>]>([:])
    private let finished = Atomic<Bool>(false)

    init(store: any CoordinationStore) {
        self.store = store
        (events, continuation) = NodeEvents.makeStream(bufferingPolicy: .unbounded)
    }

    /// The paths watched now.
    var keys: Set<Key> { forwarders.withLock { Set($0.keys) } }

    /// Sets the watches in `keys` that are not set yet, concurrently; returns once the store has set every one, so a
    /// read made afterwards misses no change.
    func add(_ keys: some Sequence<Key>) async throws {
        let missing = forwarders.withLock { forwarders in Set(keys).subtracting(forwarders.keys) }
        guard !missing.isEmpty else { return }
        try await withThrowingTaskGroup(of: (Key, NodeEvents).self) { group in
            for key in missing {
                group.addTask { [store] in
                    (key, key.subtree ? try await store.watchSubtree(key.path) : try await store.watchNode(key.path))
                }
            }
            for try await (key, stream) in group {
                forward(stream, as: key)
            }
        }
    }

    /// Stops following the watches whose key matches.
    func drop(where matches: (Key) -> Bool) {
        let dropped = forwarders.withLock { forwarders -> [Task<Void, Never>] in
            let keys = forwarders.keys.filter(matches)
            return keys.compactMap { forwarders.removeValue(forKey: $0) }
        }
        for task in dropped { task.cancel() }
    }

    /// Drops every watch and ends ``events``.
    func finish() {
        finished.store(true, ordering: .sequentiallyConsistent)
        drop { _ in true }
        continuation.finish()
    }

    private func forward(_ stream: NodeEvents, as key: Key) {
        let continuation = self.continuation
        let task = Task {
            do {
                for try await event in stream {
                    continuation.yield(event)
                }
                if Task.isCancelled { return }
                continuation.finish(throwing: PopError(.storeUnreachable, "The store ended the watch of \(key)."))
            } catch {
                if Task.isCancelled { return }
                continuation.finish(throwing: error)
            }
        }
        let replaced = forwarders.withLock { forwarders -> Task<Void, Never>? in
            // Checked under the lock that finish() drops under: a watch set after the end is not kept.
            if finished.load(ordering: .sequentiallyConsistent) { return task }
            let old = forwarders[key]
            forwarders[key] = task
            return old
        }
        replaced?.cancel()
    }
}
