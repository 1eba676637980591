import Foundation
import Synchronization
import Logging
import ZooKeeperNIO

/// The coordination store on a ZooKeeper ensemble: a thin mapping of ``CoordinationStore`` onto ``ZooKeeperClient``.
///
/// One store handle is one ZooKeeper session. The client moves between ensemble members with the same session when a
/// member fails; only when the session expires is the handle dead, and its owner opens a new one deliberately.
public final class ZooKeeperStore: CoordinationStore {
    /// A ZooKeeper ensemble serves many machines.
    public var isMachineLocal: Bool { false }

    /// The ZooKeeper client carrying this store's session.
    public let client: ZooKeeperClient
    /// ACLs given to every node this handle creates.
    let acl: [ZooKeeperACL]
    /// Who this session authenticates as, for error messages (never the password), or nil without credentials.
    let identity: String?
    private let label: String
    /// How the session ended, once it has: later subscribers get just this.
    private let ending = SessionEnding()

    private init(client: ZooKeeperClient, acl: [ZooKeeperACL], identity: String?, label: String) {
        self.client = client
        self.acl = acl
        self.identity = identity
        self.label = label
    }

    /// Connects to the ensemble and establishes a session authenticated with `credentials`, if any.
    ///
    /// With credentials every node this handle creates gets their digest ACL (all rights for their user, none for
    /// anyone else); without, nodes are open to everyone.
    public static func open(
        servers: [StoreConfiguration.Server], chroot: String?, sessionTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(10), credentials: StoreCredentials?,
        logger: Logger = Logger(label: "pop.zookeeper")
    ) async throws -> ZooKeeperStore {
        try await open(
            servers: servers, chroot: chroot, sessionTimeout: sessionTimeout, connectTimeout: connectTimeout,
            credentials: credentials.map { [($0.user, $0.password)] } ?? [],
            protectWithCredentials: credentials != nil, logger: logger, identity: credentials?.description)
    }

    /// Connects to the ensemble and establishes a session.
    ///
    /// - Parameters:
    ///   - servers: the ensemble members; the client starts at a random one.
    ///   - chroot: an optional chroot every path is relative to.
    ///   - credentials: digest credentials (`user:password`) added to the session before it is used.
    ///   - protectWithCredentials: when true, nodes are created readable and writable only by the credentials' user.
    public static func open(
        servers: [StoreConfiguration.Server], chroot: String?, sessionTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(10), credentials: [(user: String, password: String)] = [],
        protectWithCredentials: Bool = false, logger: Logger = Logger(label: "pop.zookeeper")
    ) async throws -> ZooKeeperStore {
        try await open(
            servers: servers, chroot: chroot, sessionTimeout: sessionTimeout, connectTimeout: connectTimeout,
            credentials: credentials, protectWithCredentials: protectWithCredentials, logger: logger,
            identity: credentials.first.map { "user '\($0.user)'" })
    }

    private static func open(
        servers: [StoreConfiguration.Server], chroot: String?, sessionTimeout: Duration, connectTimeout: Duration,
        credentials: [(user: String, password: String)], protectWithCredentials: Bool, logger: Logger,
        identity: String?
    ) async throws -> ZooKeeperStore {
        let configuration = ZooKeeperConfiguration(
            servers: servers.map { ZooKeeperConfiguration.Server(host: $0.host, port: $0.port) }, chroot: chroot,
            sessionTimeout: sessionTimeout, connectTimeout: connectTimeout,
            credentials: credentials.map { ZooKeeperCredential.digest(user: $0.user, password: $0.password) },
            logger: logger)
        let label = "ZooKeeper " + servers.map(\.description).joined(separator: ",") + (chroot ?? "")
        let client: ZooKeeperClient
        do {
            client = try await ZooKeeperClient.connect(configuration)
        } catch let error as ZooKeeperError {
            throw Self.translate(error, path: nil, label: label, identity: identity)
        }
        let acl: [ZooKeeperACL]
        if protectWithCredentials, let first = credentials.first {
            acl = ZooKeeperACL.digestAll(user: first.user, password: first.password)
        } else {
            acl = ZooKeeperACL.open
        }
        return ZooKeeperStore(client: client, acl: acl, identity: identity, label: label)
    }

    public var description: String { label }

    public var sessionID: Int64 { client.sessionID }

    public func create(_ path: String, data: [UInt8], mode: CreateMode) async throws -> String {
        do {
            return try await translating(path) {
                try await client.create(path, data: data, acl: acl, mode: mode.zooKeeper).path
            }
        } catch var error as PopError where error.code == .notFound {
            // ZooKeeper says NONODE about the created path; what is missing is its parent.
            let parent = NodePath.parent(path) ?? "/"
            error.path = parent
            error.message = "No node at \(parent), the parent of \(path)."
            throw error
        }
    }

    public func get(_ path: String) async throws -> StoreNode {
        try await translating(path) {
            let (data, stat) = try await client.getData(path)
            return StoreNode(path: path, data: data, stat: NodeStat(stat))
        }
    }

    public func exists(_ path: String) async throws -> NodeStat? {
        try await translating(path) {
            try await client.exists(path).map(NodeStat.init)
        }
    }

    public func children(_ path: String) async throws -> [String] {
        try await translating(path) {
            try await client.getChildren(path).children.sorted()
        }
    }

    public func set(_ path: String, data: [UInt8], version: Int32?) async throws -> NodeStat {
        try await translating(path) {
            NodeStat(try await client.setData(path, data: data, version: version ?? -1))
        }
    }

    public func delete(_ path: String, version: Int32?) async throws {
        try await translating(path) {
            try await client.delete(path, version: version ?? -1)
        }
    }

    public func multi(_ operations: [StoreOperation]) async throws -> [OperationResult] {
        guard !operations.isEmpty else { return [] }
        let mapped: [ZooKeeperOperation] = operations.map { operation in
            switch operation {
            case .create(let path, let data, let mode):
                .create(path: path, data: data, acl: acl, mode: mode.zooKeeper)
            case .set(let path, let data, let version):
                .setData(path: path, data: data, version: version ?? -1)
            case .delete(let path, let version):
                .delete(path: path, version: version ?? -1)
            case .check(let path, let version):
                .check(path: path, version: version ?? -1)
            }
        }
        do {
            let results = try await client.multi(mapped)
            return results.map { result in
                switch result {
                case .create(let path, _): .created(path)
                case .setData(let stat): .set(NodeStat(stat))
                case .delete: .deleted
                case .check: .checked
                }
            }
        } catch let error as ZooKeeperError {
            let index = error.failedOperationIndex
            let path = index.flatMap { operations.indices.contains($0) ? operations[$0].path : nil } ?? error.path
            var translated = Self.translate(error, path: path, label: label, identity: identity)
            translated.operationIndex = index
            if let index, operations.indices.contains(index) {
                translated.message = "\(operations[index]): " + translated.message
            }
            throw translated
        }
    }

    /// The most operations one multiRead carries (see ``read(_:)``).
    static let operationsPerRead = 128

    public func read(_ operations: [ReadOperation]) async throws -> [ReadResult] {
        guard !operations.isEmpty else { return [] }
        let mapped: [ZooKeeperReadOperation] = operations.map { operation in
            switch operation {
            case .get(let path): .getData(path: path)
            case .children(let path): .getChildren(path: path)
            }
        }
        // One multiRead's reply is one frame, which may not exceed jute.maxbuffer (1 MB): a status of 1,000 services
        // reads 3,000 nodes. Reads go in slices that keep the reply well under it with pop's records (a few KB at
        // most), sent at once on the session's connection (pipelined), and are put back in order. Each slice is
        // read at its own instant, as separate reads would be: callers already allow for nodes changing between them.
        let slice = Self.operationsPerRead
        let results: [ZooKeeperReadResult]
        if mapped.count <= slice {
            results = try await translating(nil) { try await client.multiRead(mapped) }
        } else {
            let client = client
            results = try await translating(nil) {
                try await withThrowingTaskGroup(of: (Int, [ZooKeeperReadResult]).self) { group in
                    for start in stride(from: 0, to: mapped.count, by: slice) {
                        let part = Array(mapped[start..<min(start + slice, mapped.count)])
                        group.addTask { (start, try await client.multiRead(part)) }
                    }
                    var parts: [(Int, [ZooKeeperReadResult])] = []
                    for try await part in group { parts.append(part) }
                    return parts.sorted { $0.0 < $1.0 }.flatMap(\.1)
                }
            }
        }
        return zip(operations, results).map { operation, result in
            switch result {
            case .data(let data, let stat):
                .node(StoreNode(path: operation.path, data: data, stat: NodeStat(stat)))
            case .children(let names):
                .children(names.sorted())
            case .failure(let error):
                .failed(Self.translate(error, path: operation.path, label: label, identity: identity))
            }
        }
    }

    public func getAndWatch(_ path: String) async throws -> (StoreNode, OneShotWatch) {
        try await translating(path) {
            let (data, stat, watch) = try await client.getData(path, watch: true)
            return (StoreNode(path: path, data: data, stat: NodeStat(stat)), bridge(watch, path: path))
        }
    }

    public func existsAndWatch(_ path: String) async throws -> (NodeStat?, OneShotWatch) {
        try await translating(path) {
            let (stat, watch) = try await client.exists(path, watch: true)
            return (stat.map(NodeStat.init), bridge(watch, path: path))
        }
    }

    public func childrenAndWatch(_ path: String) async throws -> ([String], OneShotWatch) {
        try await translating(path) {
            let (names, _, watch) = try await client.getChildren(path, watch: true)
            return (names.sorted(), bridge(watch, path: path))
        }
    }

    public func addWatch(_ path: String, subtree: Bool, into events: NodeEvents.Continuation) async throws -> WatchHandle {
        let sink = self.sink(for: path, into: events)
        let client = self.client
        let id = try await translating(path) {
            try await client.addWatch(path, mode: subtree ? .persistentRecursive : .persistent, sink: sink)
        }
        return WatchHandle { client.detachWatch(id) }
    }

    public func addWatches(_ watches: [(path: String, subtree: Bool)], into events: NodeEvents.Continuation) async throws -> [WatchHandle] {
        guard let first = watches.first?.path else { return [] }
        let sink = self.sink(for: first, into: events)
        let client = self.client
        let ids = try await translating(first) {
            try await client.addWatches(watches.map { ($0.path, $0.subtree ? .persistentRecursive : .persistent) }, sink: sink)
        }
        return ids.map { id in WatchHandle { client.detachWatch(id) } }
    }

    /// Where the watches of one request deliver: mapped events into `events`, which the session's end finishes with
    /// the error (named after `path`).
    private func sink(for path: String, into events: NodeEvents.Continuation) -> ZooKeeperWatchSink {
        let label = self.label
        let identity = self.identity
        return ZooKeeperWatchSink(
            deliver: { event in
                if let mapped = NodeEvent(event) { events.yield(mapped) }
            },
            end: { error in
                // `nil` means removeWatches removed it, which pop does not do for shared watches.
                guard let error else { return }
                events.finish(throwing: Self.translate(error, path: path, label: label, identity: identity))
            })
    }

    public func sessionEvents() -> AsyncStream<SessionEvent> {
        let ending = self.ending
        if let ended = ending.event {
            return AsyncStream { continuation in
                continuation.yield(ended)
                continuation.finish()
            }
        }
        let (stream, continuation) = AsyncStream<SessionEvent>.makeStream(bufferingPolicy: .unbounded)
        let current: SessionEvent = client.connectedServer == nil ? .disconnected : .connected
        continuation.yield(current)
        // The client hands each event to the sink as it publishes it: no task per subscriber.
        let subscription = client.subscribeSessionEvents(
            SessionEventSink(
                yield: { event in
                    let mapped: SessionEvent =
                        switch event {
                        case .connected: .connected
                        case .disconnected: .disconnected
                        case .reconnected: .reconnected
                        case .expired: .expired
                        case .closed: .closed
                        case .authFailed: .authFailed
                        }
                    // The client replays its latest event first, which `current` has said already.
                    if mapped == .connected && current == .connected { return }
                    if mapped.isTerminal { ending.end(mapped) }
                    continuation.yield(mapped)
                },
                finish: { continuation.finish() }))
        continuation.onTermination = { _ in subscription.cancel() }
        return stream
    }

    public func close() async {
        ending.end(.closed)
        await client.close()
    }

    public func closeBeforeExit() async {
        ending.end(.closed)
        await client.closeWithoutAnswer()
    }

    /// Turns the client's one-shot watch into the store's: the client's completion fires it (no task waits), and
    /// cancelling it removes the client's watch and, unless another watch still needs it, the server's.
    private func bridge(_ watch: ZooKeeperWatch, path: String) -> OneShotWatch {
        let label = self.label
        let identity = self.identity
        let oneShot = OneShotWatch(onCancel: { watch.cancel() })
        watch.whenComplete { result in
            switch result {
            case .success(let event):
                oneShot.fire(.success(NodeEvent(event) ?? NodeEvent(.childrenChanged, path: event.path)))
            case .failure(let error as ZooKeeperError):
                oneShot.fire(.failure(Self.translate(error, path: path, label: label, identity: identity)))
            case .failure(let error):
                oneShot.fire(.failure(PopError(.system, "The watch on \(path) ended: \(error)", path: path)))
            }
        }
        return oneShot
    }

    private func translating<T>(_ path: String?, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ZooKeeperError {
            throw Self.translate(error, path: path ?? error.path, label: label, identity: identity)
        }
    }

    /// Maps a ZooKeeper error onto pop's error codes, with a message a person can act on.
    static func translate(_ error: ZooKeeperError, path: String?, label: String, identity: String? = nil) -> PopError {
        let at = path.map { " at \($0)" } ?? ""
        switch error.code {
        case .noNode:
            return PopError(.notFound, "No node\(at).", path: path)
        case .nodeExists:
            return PopError(.conflict, "A node exists\(at) already.", path: path)
        case .badVersion:
            return PopError(
                .conflict, "The node\(at) changed meanwhile (version mismatch).", hint: "Read it again and retry.",
                path: path)
        case .notEmpty:
            return PopError(.conflict, "The node\(at) still has children.", path: path)
        case .noChildrenForEphemerals:
            return PopError(.invalidInput, "An ephemeral node cannot have children\(at).", path: path)
        case .noAuth:
            // Digest authentication itself never fails: wrong credentials are only seen as a refused operation.
            guard let identity else {
                return PopError(
                    .permissionDenied,
                    "\(label) refused access\(at): the namespace is protected and pop has no credentials.",
                    hint: "Set POP_AUTH=user:password, or put that line in a credentials file of mode 600 (~/.config/pop/credentials, or the file POP_AUTH_FILE names).",
                    path: path)
            }
            return PopError(
                .permissionDenied,
                "\(label) refused access\(at) to \(identity): the password is wrong, or that user has no rights there.",
                hint: "Check the credentials in POP_AUTH or the credentials file against those `pop init --auth` set.",
                path: path)
        case .authFailed:
            return PopError(
                .permissionDenied, "\(label) rejected pop's credentials\(identity.map { ", \($0)" } ?? "").",
                hint: "Check POP_AUTH or the credentials file.", path: path)
        case .invalidPath, .badArguments, .invalidACL:
            return PopError(.invalidInput, "\(label) refused the request\(at): \(error.message)", path: path)
        case .connectionLoss, .connectTimeout, .operationTimeout, .requestTimeout, .sessionExpired, .clientClosed,
            .sessionMoved:
            return PopError(
                .storeUnreachable, "\(label) is unreachable: \(error.message)",
                hint: "Check that ZooKeeper runs and that --host (or POP_HOST) names its members.", path: path)
        default:
            return PopError(.system, "\(label) failed\(at): \(error.message)", path: path)
        }
    }
}

extension CreateMode {
    var zooKeeper: ZooKeeperCreateMode {
        switch self {
        case .persistent: .persistent
        case .ephemeral: .ephemeral
        case .persistentSequential: .persistentSequential
        case .ephemeralSequential: .ephemeralSequential
        }
    }
}

extension NodeStat {
    init(_ stat: ZooKeeperStat) {
        self.init(
            version: stat.version, childrenVersion: stat.cversion, ephemeralOwner: stat.ephemeralOwner,
            dataLength: stat.dataLength, numChildren: stat.numChildren,
            created: Date(timeIntervalSince1970: Double(stat.ctime) / 1000),
            modified: Date(timeIntervalSince1970: Double(stat.mtime) / 1000))
    }
}

extension NodeEvent {
    init?(_ event: ZooKeeperWatchEvent) {
        switch event.type {
        case .nodeCreated: self.init(.created, path: event.path)
        case .nodeDeleted: self.init(.deleted, path: event.path)
        case .nodeDataChanged: self.init(.dataChanged, path: event.path)
        case .nodeChildrenChanged: self.init(.childrenChanged, path: event.path)
        default: return nil
        }
    }
}

/// How a session ended, set once.
private final class SessionEnding: Sendable {
    private let state = Mutex<SessionEvent?>(nil)

    var event: SessionEvent? { state.withLock { $0 } }

    func end(_ event: SessionEvent) {
        state.withLock { $0 = $0 ?? event }
    }
}
