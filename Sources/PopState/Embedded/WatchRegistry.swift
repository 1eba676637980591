import Synchronization

/// One row of the embedded store's change log.
package struct ChangeRecord: Hashable, Sendable {
    /// The change's position in the log (strictly increasing, without gaps, in commit order).
    package var id: Int64
    /// What happened.
    package var kind: NodeEvent.Kind
    /// The node it happened to.
    package var path: String

    package init(id: Int64, kind: NodeEvent.Kind, path: String) {
        self.id = id
        self.kind = kind
        self.path = path
    }
}

/// The watches of one embedded store handle, fed with change-log rows in order.
///
/// A watch is registered *before* the read that sets it, so that changes the dispatcher sees while the read runs are
/// buffered; the read then activates it with the log position of its snapshot, and buffered changes at or before that
/// position are discarded. So no change is missed and none is reported twice, whatever the timing.
package final class WatchRegistry: Sendable {
    package enum OneShotKind: Sendable { case data, children }

    private struct OneShot {
        var kind: OneShotKind
        var path: String
        var watch: OneShotWatch
        /// The log position of the snapshot the watch was set on; `nil` while the read runs.
        var since: Int64?
        /// Matching changes seen while the read ran.
        var pending: [(Int64, NodeEvent)] = []
    }

    /// A persistent watch: of a whole subtree, or of one node and its list of children.
    private struct Subtree {
        var root: String
        var recursive: Bool
        var continuation: NodeEvents.Continuation
        var since: Int64?
        var pending: [(Int64, NodeEvent)] = []
    }

    private struct State {
        var position: Int64
        var nextToken = 0
        var oneShots: [Int: OneShot] = [:]
        var subtrees: [Int: Subtree] = [:]
        /// The watches by the path they are set on (a subtree's root), so that a change is matched only with the
        /// watches on its own path and the paths above it, not with every watch.
        var tokens: [String: Set<Int>] = [:]
        var ended: PopError?

        mutating func index(_ token: Int, at path: String) {
            tokens[path, default: []].insert(token)
        }

        mutating func removeOneShot(_ token: Int) {
            guard let oneShot = oneShots.removeValue(forKey: token) else { return }
            unindex(token, at: oneShot.path)
        }

        mutating func removeSubtree(_ token: Int) {
            guard let subtree = subtrees.removeValue(forKey: token) else { return }
            unindex(token, at: subtree.root)
        }

        private mutating func unindex(_ token: Int, at path: String) {
            guard var set = tokens[path] else { return }
            set.remove(token)
            tokens[path] = set.isEmpty ? nil : set
        }
    }

    private let state: Mutex<State>

    /// Creates a registry whose dispatcher has read the log up to `position`.
    package init(position: Int64) {
        state = Mutex(State(position: position))
    }

    /// The log position the dispatcher has read up to.
    package var position: Int64 { state.withLock { $0.position } }

    /// Registers a one-shot watch, pending until ``activate(_:since:)``.
    package func registerOneShot(_ kind: OneShotKind, path: String) throws(PopError) -> (Int, OneShotWatch) {
        try state.withLock { (state) throws(PopError) -> (Int, OneShotWatch) in
            if let ended = state.ended { throw ended }
            let token = state.nextToken
            state.nextToken += 1
            let watch = OneShotWatch(onCancel: { [weak self] in self?.discard(token) })
            state.oneShots[token] = OneShot(kind: kind, path: path, watch: watch)
            state.index(token, at: path)
            return (token, watch)
        }
    }

    /// Registers a persistent watch of the subtree at `root` (or, when not `recursive`, of the node at `root` and its
    /// children list), pending until ``activate(_:since:)``, whose events go into `continuation`, which other
    /// watches may share: discarding this watch does not finish it; the end of the session does.
    package func registerSubtree(
        root: String, recursive: Bool, sharing continuation: NodeEvents.Continuation
    ) throws(PopError) -> Int {
        try state.withLock { (state) throws(PopError) -> Int in
            if let ended = state.ended { throw ended }
            let token = state.nextToken
            state.nextToken += 1
            state.subtrees[token] = Subtree(root: root, recursive: recursive, continuation: continuation)
            state.index(token, at: root)
            return token
        }
    }

    /// Activates a watch set by a read of the snapshot at log position `since`.
    package func activate(_ token: Int, since: Int64) {
        var fire: (OneShotWatch, NodeEvent)?
        var deliver: (NodeEvents.Continuation, [NodeEvent])?
        state.withLock { state in
            if var oneShot = state.oneShots[token] {
                if let first = oneShot.pending.first(where: { $0.0 > since }) {
                    state.removeOneShot(token)
                    fire = (oneShot.watch, first.1)
                } else {
                    oneShot.since = since
                    oneShot.pending = []
                    state.oneShots[token] = oneShot
                }
            } else if var subtree = state.subtrees[token] {
                deliver = (subtree.continuation, subtree.pending.filter { $0.0 > since }.map(\.1))
                subtree.since = since
                subtree.pending = []
                state.subtrees[token] = subtree
            }
        }
        if let (watch, event) = fire { watch.fire(.success(event)) }
        if let (continuation, events) = deliver {
            for event in events { continuation.yield(event) }
        }
    }

    /// Forgets a watch (its read failed, or its owner dropped it).
    package func discard(_ token: Int) {
        state.withLock { state in
            state.removeOneShot(token)
            state.removeSubtree(token)
        }
    }

    /// Feeds change-log rows read after ``position``, in order; rows at or before it are ignored.
    package func dispatch(_ changes: [ChangeRecord]) {
        var fires: [(OneShotWatch, NodeEvent)] = []
        var deliveries: [(NodeEvents.Continuation, NodeEvent)] = []
        state.withLock { state in
            for change in changes where change.id > state.position {
                state.position = change.id
                // Only a watch on the changed node or on a node above it can match.
                for path in NodePath.selfAndAncestors(change.path) {
                    guard let tokens = state.tokens[path] else { continue }
                    for token in tokens {
                        if var oneShot = state.oneShots[token] {
                            guard let event = Self.match(oneShot, change) else { continue }
                            if let since = oneShot.since {
                                if change.id > since {
                                    state.removeOneShot(token)
                                    fires.append((oneShot.watch, event))
                                }
                            } else {
                                oneShot.pending.append((change.id, event))
                                state.oneShots[token] = oneShot
                            }
                        } else if var subtree = state.subtrees[token] {
                            guard let event = Self.match(subtree, change) else { continue }
                            if let since = subtree.since {
                                if change.id > since { deliveries.append((subtree.continuation, event)) }
                            } else {
                                subtree.pending.append((change.id, event))
                                state.subtrees[token] = subtree
                            }
                        }
                    }
                }
            }
        }
        for (watch, event) in fires { watch.fire(.success(event)) }
        for (continuation, event) in deliveries { continuation.yield(event) }
    }

    /// Ends every watch with `error` (the session ended); later registrations fail with it too.
    package func end(_ error: PopError) {
        let (oneShots, subtrees) = state.withLock { state -> ([OneShotWatch], [NodeEvents.Continuation]) in
            guard state.ended == nil else { return ([], []) }
            state.ended = error
            defer {
                state.oneShots = [:]
                state.subtrees = [:]
                state.tokens = [:]
            }
            return (state.oneShots.values.map(\.watch), state.subtrees.values.map(\.continuation))
        }
        for watch in oneShots { watch.fire(.failure(error)) }
        for continuation in subtrees { continuation.finish(throwing: error) }
    }

    /// How many watches are registered (for tests and diagnostics).
    package var count: Int { state.withLock { $0.oneShots.count + $0.subtrees.count } }

    private static func match(_ subtree: Subtree, _ change: ChangeRecord) -> NodeEvent? {
        if subtree.recursive {
            return NodePath.isWithin(change.path, subtree.root) ? NodeEvent(change.kind, path: change.path) : nil
        }
        if change.path == subtree.root { return NodeEvent(change.kind, path: change.path) }
        guard change.kind == .created || change.kind == .deleted, NodePath.parent(change.path) == subtree.root else {
            return nil
        }
        return NodeEvent(.childrenChanged, path: subtree.root)
    }

    private static func match(_ oneShot: OneShot, _ change: ChangeRecord) -> NodeEvent? {
        switch oneShot.kind {
        case .data:
            guard change.path == oneShot.path, change.kind != .childrenChanged else { return nil }
            return NodeEvent(change.kind, path: oneShot.path)
        case .children:
            if change.path == oneShot.path {
                return change.kind == .deleted ? NodeEvent(.deleted, path: oneShot.path) : nil
            }
            guard change.kind != .dataChanged, NodePath.parent(change.path) == oneShot.path else { return nil }
            return NodeEvent(.childrenChanged, path: oneShot.path)
        }
    }
}
