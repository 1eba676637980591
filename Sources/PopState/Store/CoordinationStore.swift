/// A hierarchical coordination store with ZooKeeper's semantics, so that pop's CLI and agent are written once.
///
/// The model is ZooKeeper's: nodes named by absolute paths (`/pop/services/plone`), each with data, a data version
/// bumped by every set, a children version bumped by every child create or delete, and an optional ephemeral owner
/// (the session that created it). Writes can be made conditional on a version (compare-and-set) and grouped into an
/// atomic ``multi(_:)``. Reads can leave one-shot watches, and ``watchSubtree(_:)`` follows a whole subtree.
///
/// A store handle owns one session. Ephemeral nodes created through the handle belong to that session and vanish
/// when it is closed or expires. Once the session has expired or been closed, every operation fails; open a new
/// handle to continue (as with a ZooKeeper client).
///
/// Every method throws ``PopError``: `.notFound` (with ``PopError/path``) for a missing node, `.conflict` for a
/// version mismatch, an existing node or a node that still has children, `.invalidInput` for a malformed path,
/// `.storeUnreachable` when the store cannot be reached or the session has ended, and `.corruptState` when the
/// store's own files are damaged.
public protocol CoordinationStore: Sendable, CustomStringConvertible {
    /// Which store this is and where, for people: `embedded store /root/.local/state/pop/store.sqlite` or
    /// `ZooKeeper 127.0.0.1:2181 prefix /pop`.
    var description: String { get }

    /// The id of the session this handle owns; it is the ``NodeStat/ephemeralOwner`` of its ephemeral nodes.
    var sessionID: Int64 { get }

    /// Whether every client of the store runs on this machine (the embedded store): a watch then costs no network
    /// traffic and reaches no other machine, so one subtree watch is cheaper than many narrow ones.
    var isMachineLocal: Bool { get }

    /// Creates a node and returns its path (which, for sequential modes, carries the `%010d` suffix).
    ///
    /// Fails with `.notFound` when the parent is missing and `.conflict` when the node exists.
    func create(_ path: String, data: [UInt8], mode: CreateMode) async throws -> String

    /// Reads a node's data and stat; `.notFound` when it does not exist.
    func get(_ path: String) async throws -> StoreNode

    /// Reads a node's stat, or `nil` when it does not exist.
    func exists(_ path: String) async throws -> NodeStat?

    /// The names (not paths) of a node's children, sorted; `.notFound` when the node does not exist.
    func children(_ path: String) async throws -> [String]

    /// Replaces a node's data, if its version is `version` (any version when `nil`), and returns its new stat.
    func set(_ path: String, data: [UInt8], version: Int32?) async throws -> NodeStat

    /// Deletes a node, if its version is `version` (any version when `nil`); `.conflict` when it has children.
    func delete(_ path: String, version: Int32?) async throws

    /// Applies every operation or none. When one fails, the error's ``PopError/operationIndex`` says which.
    func multi(_ operations: [StoreOperation]) async throws -> [OperationResult]

    /// Runs several reads in one round trip. Each read succeeds or fails on its own (as ZooKeeper's `multiRead`);
    /// the reads are not one atomic snapshot on every store.
    func read(_ operations: [ReadOperation]) async throws -> [ReadResult]

    /// Reads a node and leaves a one-shot watch that fires on its next change (data set or delete).
    func getAndWatch(_ path: String) async throws -> (StoreNode, OneShotWatch)

    /// Reads a node's stat (or `nil`) and leaves a one-shot watch that fires on its next create, set or delete.
    func existsAndWatch(_ path: String) async throws -> (NodeStat?, OneShotWatch)

    /// Lists a node's children and leaves a one-shot watch that fires on the next child create or delete, or when
    /// the node itself is deleted.
    func childrenAndWatch(_ path: String) async throws -> ([String], OneShotWatch)

    /// Sets a persistent watch of the node at `path` (as ``watchNode(_:)``) or, with `subtree`, of everything at and
    /// below it (as ``watchSubtree(_:)``), whose events are yielded into `events`: a continuation many watches may
    /// share, so that following thousands of paths costs no task or buffer per path. When the session ends, `events`
    /// is finished with the error. ``WatchHandle/cancel()`` stops this watch's deliveries only.
    func addWatch(_ path: String, subtree: Bool, into events: NodeEvents.Continuation) async throws -> WatchHandle

    /// Sets several persistent watches as ``addWatch(_:subtree:into:)`` does, all delivering into `events`, and returns
    /// their handles in the order of `watches`. ZooKeeper sets them in one request per 128 KiB of paths instead of one
    /// per watch. When it throws, none of them is left delivering into `events`.
    func addWatches(_ watches: [(path: String, subtree: Bool)], into events: NodeEvents.Continuation) async throws -> [WatchHandle]

    /// The session's events from now on, starting with its current state.
    func sessionEvents() -> AsyncStream<SessionEvent>

    /// Closes the session: its ephemeral nodes are deleted at once, and its watches end.
    func close() async

    /// Closes the session for a command that exits next: as ``close()``, except that a ZooKeeper session's close is
    /// sent without waiting for the server's answer, so its ephemeral nodes go a moment after this returns.
    func closeBeforeExit() async

    /// Lets go of what the handle keeps only to be quicker: the page cache of each of the embedded store's
    /// connections (its readers stay open), which the next reads fill again. A long-running agent calls it after a
    /// burst of work; nothing else changes. Returns once that memory is freed.
    func releaseCaches() async
}

extension CoordinationStore {
    public func closeBeforeExit() async {
        await close()
    }

    /// A ZooKeeper handle keeps no cache.
    public func releaseCaches() async {}

    /// One ``addWatch(_:subtree:into:)`` per watch, concurrently.
    public func addWatches(_ watches: [(path: String, subtree: Bool)], into events: NodeEvents.Continuation) async throws -> [WatchHandle] {
        var handles: [WatchHandle?] = Array(repeating: nil, count: watches.count)
        var failure: (any Error)?
        // Every add runs to its end, so that when one fails, those that succeeded are all cancelled again.
        await withTaskGroup(of: (Int, Result<WatchHandle, any Error>).self) { group in
            for (index, watch) in watches.enumerated() {
                group.addTask {
                    do {
                        return (index, .success(try await addWatch(watch.path, subtree: watch.subtree, into: events)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            for await (index, result) in group {
                switch result {
                case .success(let handle): handles[index] = handle
                case .failure(let error): failure = failure ?? error
                }
            }
        }
        if let failure {
            for handle in handles { handle?.cancel() }
            throw failure
        }
        return handles.map { $0! }
    }

    /// Follows every create, delete and data change at `path` and below, from now until the sequence is dropped.
    ///
    /// Events are never dropped (the buffer is unbounded). The sequence ends with an error when the session ends.
    public func watchSubtree(_ path: String) async throws -> NodeEvents {
        try await watchStream(path, subtree: true)
    }

    /// Follows one node, from now until the sequence is dropped: its creation, deletion and data changes, and the
    /// creation or deletion of its direct children (`childrenChanged`, with the node's own path). The node need not
    /// exist yet. ZooKeeper's persistent (non-recursive) watch.
    ///
    /// Events are never dropped (the buffer is unbounded). The sequence ends with an error when the session ends.
    public func watchNode(_ path: String) async throws -> NodeEvents {
        try await watchStream(path, subtree: false)
    }

    /// Wakes its reader after changes at `path` and below, for a reader that reads the subtree again each time it
    /// wakes: however many changes arrive while it reads, they count as one (the stream keeps only the newest event),
    /// so a burst costs one more read, not one per change. The agent's `Wakeup` does the same for its reconcile pass.
    ///
    /// A change made after a read began always wakes the reader once more, so none is missed. The sequence ends with
    /// an error when the session ends.
    public func changes(under path: String) async throws -> NodeEvents {
        let (events, continuation) = NodeEvents.makeStream(bufferingPolicy: .bufferingNewest(1))
        let handle = try await addWatch(path, subtree: true, into: continuation)
        continuation.onTermination = { _ in handle.cancel() }
        return events
    }

    /// One watch with a stream of its own: dropping the stream cancels the watch.
    private func watchStream(_ path: String, subtree: Bool) async throws -> NodeEvents {
        let (events, continuation) = NodeEvents.makeStream(bufferingPolicy: .unbounded)
        let handle = try await addWatch(path, subtree: subtree, into: continuation)
        continuation.onTermination = { _ in handle.cancel() }
        return events
    }
}

/// The events of a persistent watch.
public typealias NodeEvents = AsyncThrowingStream<NodeEvent, any Error>

/// Stops the deliveries of a watch set with ``CoordinationStore/addWatch(_:subtree:into:)``.
public final class WatchHandle: Sendable {
    private let onCancel: @Sendable () -> Void

    /// A handle that runs `onCancel` when cancelled.
    public init(onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = onCancel
    }

    /// Stops delivering this watch's events (the shared continuation is not finished).
    public func cancel() {
        onCancel()
    }
}
