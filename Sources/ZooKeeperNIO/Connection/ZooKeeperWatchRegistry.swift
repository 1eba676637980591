import NIOCore

/// The watches the client holds locally, keyed by server path (chroot included).
///
/// It mirrors the server's watch tables so an event reaches every local waiter, and so every watch can be
/// re-registered with SetWatches after a reconnect.
struct ZooKeeperWatchRegistry {
    typealias OneShot = EventLoopPromise<ZooKeeperWatchEvent>
    typealias Stream = ZooKeeperWatchSink

    /// Watches set by getData, or by exists on an existing node.
    private(set) var data: [String: [OneShot]] = [:]
    /// Watches set by exists on a missing node.
    private(set) var exist: [String: [OneShot]] = [:]
    /// Watches set by getChildren.
    private(set) var child: [String: [OneShot]] = [:]
    private(set) var persistent: [String: [Int: Stream]] = [:]
    private(set) var persistentRecursive: [String: [Int: Stream]] = [:]

    var isEmpty: Bool {
        self.data.isEmpty && self.exist.isEmpty && self.child.isEmpty && self.persistent.isEmpty
            && self.persistentRecursive.isEmpty
    }

    var hasPersistentWatches: Bool { !self.persistent.isEmpty || !self.persistentRecursive.isEmpty }

    mutating func add(_ registration: WatchRegistration, nodeExists: Bool) {
        switch registration {
        case .data(let path, let promise):
            self.data[path, default: []].append(promise)
        case .exists(let path, let promise):
            if nodeExists {
                self.data[path, default: []].append(promise)
            } else {
                self.exist[path, default: []].append(promise)
            }
        case .child(let path, let promise):
            self.child[path, default: []].append(promise)
        case .persistent(let path, let mode, let id, let stream):
            self.addPersistent(path, mode, id: id, stream)
        case .persistentMany(let watches, let stream):
            for watch in watches { self.addPersistent(watch.serverPath, watch.mode, id: watch.id, stream) }
        case .removal:
            break
        }
    }

    private mutating func addPersistent(_ path: String, _ mode: ZooKeeperAddWatchMode, id: Int, _ stream: Stream) {
        switch mode {
        case .persistent: self.persistent[path, default: [:]][id] = stream
        case .persistentRecursive: self.persistentRecursive[path, default: [:]][id] = stream
        }
    }

    /// Removes a persistent stream whose consumer went away; returns the server paths on which no local watch of
    /// any kind remains because of it (the server's watches there serve nobody any more).
    mutating func removeStream(id: Int) -> [String] {
        var emptied: [String] = []
        for (path, streams) in self.persistent where streams[id] != nil {
            self.persistent[path]![id] = nil
            if self.persistent[path]!.isEmpty {
                self.persistent[path] = nil
                emptied.append(path)
            }
        }
        for (path, streams) in self.persistentRecursive where streams[id] != nil {
            self.persistentRecursive[path]![id] = nil
            if self.persistentRecursive[path]!.isEmpty {
                self.persistentRecursive[path] = nil
                emptied.append(path)
            }
        }
        return emptied.filter { !self.watches($0) }
    }

    /// Whether any local watch, one-shot or persistent, is registered on `serverPath`.
    func watches(_ serverPath: String) -> Bool {
        self.data[serverPath] != nil || self.exist[serverPath] != nil || self.child[serverPath] != nil
            || self.persistent[serverPath] != nil || self.persistentRecursive[serverPath] != nil
    }

    /// Finds (and for one-shot watches, removes) every watch an event on `serverPath` triggers.
    mutating func trigger(type: ZooKeeperWatchEvent.EventType, serverPath: String, event: ZooKeeperWatchEvent) -> [WatchDelivery] {
        var deliveries: [WatchDelivery] = []
        func fire(_ table: inout [String: [OneShot]]) {
            if let promises = table.removeValue(forKey: serverPath) {
                for promise in promises { deliveries.append(.oneShot(promise, .success(event))) }
            }
        }
        switch type {
        case .nodeCreated, .nodeDataChanged:
            fire(&self.data)
            fire(&self.exist)
        case .nodeDeleted:
            fire(&self.data)
            fire(&self.exist)
            fire(&self.child)
        case .nodeChildrenChanged:
            fire(&self.child)
        default:
            break
        }
        if let streams = self.persistent[serverPath] {
            for id in streams.keys.sorted() { deliveries.append(.stream(streams[id]!, event)) }
        }
        // Recursive watches see creations, deletions and data changes of the node and every descendant.
        if type != .nodeChildrenChanged, !self.persistentRecursive.isEmpty {
            var prefix = serverPath
            while true {
                if let streams = self.persistentRecursive[prefix] {
                    for id in streams.keys.sorted() { deliveries.append(.stream(streams[id]!, event)) }
                }
                if prefix == "/" { break }
                let slash = prefix.lastIndex(of: "/")!
                prefix = slash == prefix.startIndex ? "/" : String(prefix[..<slash])
            }
        }
        return deliveries
    }

    /// Removes the watches `removeWatches` removed on the server and tells their waiters.
    mutating func remove(serverPath: String, type: ZooKeeperWatcherType, userPath: String) -> [WatchDelivery] {
        var deliveries: [WatchDelivery] = []
        func removeOneShots(_ table: inout [String: [OneShot]], as eventType: ZooKeeperWatchEvent.EventType) {
            for promise in table.removeValue(forKey: serverPath) ?? [] {
                deliveries.append(.oneShot(promise, .success(ZooKeeperWatchEvent(type: eventType, path: userPath))))
            }
        }
        func removeStreams(_ table: inout [String: [Int: Stream]]) {
            let streams = table.removeValue(forKey: serverPath) ?? [:]
            for id in streams.keys.sorted() {
                deliveries.append(.stream(streams[id]!, ZooKeeperWatchEvent(type: .persistentWatchRemoved, path: userPath)))
                deliveries.append(.finishStream(streams[id]!, nil))
            }
        }
        switch type {
        case .children:
            removeOneShots(&self.child, as: .childWatchRemoved)
        case .data:
            removeOneShots(&self.data, as: .dataWatchRemoved)
            removeOneShots(&self.exist, as: .dataWatchRemoved)
        case .any:
            removeOneShots(&self.child, as: .childWatchRemoved)
            removeOneShots(&self.data, as: .dataWatchRemoved)
            removeOneShots(&self.exist, as: .dataWatchRemoved)
            removeStreams(&self.persistent)
            removeStreams(&self.persistentRecursive)
        case .persistent:
            removeStreams(&self.persistent)
        case .persistentRecursive:
            removeStreams(&self.persistentRecursive)
        }
        return deliveries
    }

    /// A one-shot watch removed by its owner, and what that means for the server's watch.
    struct Cancelled {
        /// Completes the watch with a `dataWatchRemoved` or `childWatchRemoved` event.
        var delivery: WatchDelivery
        var serverPath: String
        /// The server's kind of watch it was: `.data` (getData, exists) or `.children`.
        var type: ZooKeeperWatcherType
        /// Whether another local one-shot watch still needs the server's watch of this kind on this node.
        var stillNeeded: Bool
    }

    /// Removes the one-shot watch whose future is `future`; nil when it fired or ended already.
    mutating func cancel(_ future: EventLoopFuture<ZooKeeperWatchEvent>, userPath: (String) -> String) -> Cancelled? {
        func take(_ table: inout [String: [OneShot]]) -> (OneShot, String)? {
            for (path, promises) in table {
                guard let index = promises.firstIndex(where: { $0.futureResult === future }) else { continue }
                let promise = table[path]!.remove(at: index)
                if table[path]!.isEmpty { table[path] = nil }
                return (promise, path)
            }
            return nil
        }
        if let (promise, path) = take(&self.data) ?? take(&self.exist) {
            let event = ZooKeeperWatchEvent(type: .dataWatchRemoved, path: userPath(path))
            return Cancelled(
                delivery: .oneShot(promise, .success(event)), serverPath: path, type: .data,
                stillNeeded: self.data[path] != nil || self.exist[path] != nil)
        }
        if let (promise, path) = take(&self.child) {
            let event = ZooKeeperWatchEvent(type: .childWatchRemoved, path: userPath(path))
            return Cancelled(
                delivery: .oneShot(promise, .success(event)), serverPath: path, type: .children,
                stillNeeded: self.child[path] != nil)
        }
        return nil
    }

    /// How many one-shot watches are registered.
    var oneShotCount: Int {
        [self.data, self.exist, self.child].reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
    }

    /// Removes every watch, failing its waiter with `error`.
    mutating func removeAll(failingWith error: ZooKeeperError) -> [WatchDelivery] {
        var deliveries: [WatchDelivery] = []
        for table in [self.data, self.exist, self.child] {
            for promises in table.values {
                for promise in promises { deliveries.append(.oneShot(promise, .failure(error))) }
            }
        }
        for table in [self.persistent, self.persistentRecursive] {
            for streams in table.values {
                for stream in streams.values { deliveries.append(.finishStream(stream, error)) }
            }
        }
        self = ZooKeeperWatchRegistry()
        return deliveries
    }

    /// The SetWatches2 requests that restore every watch on a new connection, each at most `maxPathBytes`
    /// of paths (large requests were refused by servers and lost watches in other clients).
    func setWatchesRequests(relativeZxid: Int64, maxPathBytes: Int = 128 * 1024) -> [ZooKeeperClientMessage] {
        let lists: [[String]] = [
            self.data.keys.sorted(), self.exist.keys.sorted(), self.child.keys.sorted(),
            self.persistent.keys.sorted(), self.persistentRecursive.keys.sorted(),
        ]
        let usesSetWatches2 = self.hasPersistentWatches
        var batches: [[[String]]] = []
        var current: [[String]] = Array(repeating: [], count: 5)
        var currentBytes = 0
        for (kind, paths) in lists.enumerated() {
            for path in paths {
                let size = path.utf8.count + 4
                if currentBytes + size > maxPathBytes, currentBytes > 0 {
                    batches.append(current)
                    current = Array(repeating: [], count: 5)
                    currentBytes = 0
                }
                current[kind].append(path)
                currentBytes += size
            }
        }
        if currentBytes > 0 { batches.append(current) }
        return batches.map { batch in
            var body = ByteBuffer()
            body.writeInteger(relativeZxid)
            body.writeJuteStringVector(batch[0])
            body.writeJuteStringVector(batch[1])
            body.writeJuteStringVector(batch[2])
            if usesSetWatches2 {
                body.writeJuteStringVector(batch[3])
                body.writeJuteStringVector(batch[4])
            }
            return .request(xid: ReservedXID.setWatches, opCode: usesSetWatches2 ? .setWatches2 : .setWatches, body: body)
        }
    }
}

/// A watch a request sets once its reply arrives.
enum WatchRegistration: Sendable {
    /// getData's watch.
    case data(serverPath: String, EventLoopPromise<ZooKeeperWatchEvent>)
    /// exists' watch: a data watch if the node exists, an exist watch if not.
    case exists(serverPath: String, EventLoopPromise<ZooKeeperWatchEvent>)
    /// getChildren's watch.
    case child(serverPath: String, EventLoopPromise<ZooKeeperWatchEvent>)
    /// addWatch's persistent watch, delivered to a stream.
    case persistent(serverPath: String, ZooKeeperAddWatchMode, id: Int, ZooKeeperWatchRegistry.Stream)
    /// Persistent watches set together by one SetWatches2 request, all delivered to one stream.
    case persistentMany([PersistentWatchRequest], ZooKeeperWatchRegistry.Stream)
    /// Not a registration: removeWatches' reply removes the local watches of this path and type.
    case removal(serverPath: String, ZooKeeperWatcherType)

    /// Whether this request sets any watch on `serverPath` once its reply arrives.
    func sets(on serverPath: String) -> Bool {
        switch self {
        case .data(let path, _), .exists(let path, _), .child(let path, _), .persistent(let path, _, _, _):
            path == serverPath
        case .persistentMany(let watches, _):
            watches.contains { $0.serverPath == serverPath }
        case .removal: false
        }
    }

    /// Whether this request sets a one-shot watch of `type` on `serverPath` once its reply arrives.
    func sets(_ type: ZooKeeperWatcherType, on serverPath: String) -> Bool {
        switch self {
        case .data(let path, _), .exists(let path, _): type == .data && path == serverPath
        case .child(let path, _): type == .children && path == serverPath
        case .persistent, .persistentMany, .removal: false
        }
    }

    /// Fails the waiter of a watch that was never set.
    func fail(_ error: ZooKeeperError) -> WatchDelivery? {
        switch self {
        case .removal:
            nil
        case .data(_, let promise), .exists(_, let promise), .child(_, let promise):
            .oneShot(promise, .failure(error))
        case .persistent, .persistentMany:
            // The request's caller gets the error and never sees the watch; its sink may be shared with watches
            // that were set, so it is not ended.
            nil
        }
    }
}

/// One persistent watch of a SetWatches2 request that sets several.
struct PersistentWatchRequest: Sendable {
    var serverPath: String
    var mode: ZooKeeperAddWatchMode
    var id: Int
}

/// One thing to tell a watcher.
enum WatchDelivery {
    case oneShot(EventLoopPromise<ZooKeeperWatchEvent>, Result<ZooKeeperWatchEvent, ZooKeeperError>)
    case stream(ZooKeeperWatchRegistry.Stream, ZooKeeperWatchEvent)
    case finishStream(ZooKeeperWatchRegistry.Stream, ZooKeeperError?)

    func deliver() {
        switch self {
        case .oneShot(let promise, let result):
            promise.completeWith(result.mapError { $0 as any Error })
        case .stream(let sink, let event):
            sink.deliver(event)
        case .finishStream(let sink, let error):
            sink.end(error)
        }
    }
}

/// Where a persistent watch's events go: each event, then at most one end (`nil` when the watch was removed, an
/// error when the session ended). Both are called on the client's event loop, in order. Several watches may share
/// one consumer, for example by yielding into one stream.
public struct ZooKeeperWatchSink: Sendable {
    let deliver: @Sendable (ZooKeeperWatchEvent) -> Void
    let end: @Sendable (ZooKeeperError?) -> Void

    /// A sink calling `deliver` for each event and `end` once when the watch ends.
    public init(
        deliver: @escaping @Sendable (ZooKeeperWatchEvent) -> Void, end: @escaping @Sendable (ZooKeeperError?) -> Void
    ) {
        self.deliver = deliver
        self.end = end
    }

    /// A sink feeding a stream's continuation.
    init(_ continuation: AsyncThrowingStream<ZooKeeperWatchEvent, any Error>.Continuation) {
        self.init(deliver: { continuation.yield($0) }, end: { continuation.finish(throwing: $0) })
    }
}

/// Identifies a watch set with ``ZooKeeperClient/addWatch(_:mode:sink:)``, for ``ZooKeeperClient/detachWatch(_:)``.
public struct ZooKeeperWatchID: Hashable, Sendable {
    let rawValue: Int
}
