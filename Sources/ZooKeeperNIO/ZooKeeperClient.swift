import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A ZooKeeper client: one session, pipelined requests, watches and session events.
///
/// ```swift
/// let client = try await ZooKeeperClient.connect(ZooKeeperConfiguration(connectString: "h1:2181,h2:2181/app"))
/// let (path, _) = try await client.create("/config", data: Array("v1".utf8))
/// let (data, stat) = try await client.getData(path)
/// await client.close()
/// ```
///
/// All methods may be called concurrently from any task; requests are pipelined on one connection and answered
/// in order. When a connection breaks the client reconnects to another member with the same session
/// (`sessionEvents` reports `.disconnected` and `.reconnected`). When the session expires the client is finished
/// and every call throws `.sessionExpired`: create a new client and rebuild ephemeral nodes and watches.
public final class ZooKeeperClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: ZooKeeperConfiguration
    let controller: ZooKeeperSessionController
    let chroot: String
    let eventLoop: any EventLoop
    private let streamIDs = NIOLockedValueBox(0)

    init(
        configuration: ZooKeeperConfiguration, connector: any ZooKeeperConnector = ZooKeeperTCPConnector(),
        eventLoop: (any EventLoop)? = nil, firstServer: Int? = nil, resuming: (id: Int64, password: [UInt8])? = nil
    ) {
        self.configuration = configuration
        self.chroot = configuration.chroot ?? ""
        let eventLoop = eventLoop ?? configuration.eventLoopGroup.next()
        self.eventLoop = eventLoop
        self.controller = ZooKeeperSessionController(
            eventLoop: eventLoop, configuration: configuration, connector: connector, firstServer: firstServer, resuming: resuming
        )
    }

    deinit {
        // A client dropped without close() would keep its session alive with pings; end it.
        let controller = self.controller
        controller.eventLoop.execute {
            controller.close(promise: controller.eventLoop.makePromise())
        }
    }

    /// Connects to the ensemble and establishes a new session.
    ///
    /// Throws `.connectTimeout` when no server answers within `configuration.connectTimeout`.
    public static func connect(_ configuration: ZooKeeperConfiguration) async throws -> ZooKeeperClient {
        guard !configuration.servers.isEmpty else {
            throw ZooKeeperError(code: .invalidConnectString, message: "the configuration names no ZooKeeper servers")
        }
        let client = ZooKeeperClient(configuration: configuration)
        try await client.start()
        return client
    }

    /// Connects and resumes an existing session (for example one handed over from another process).
    ///
    /// Throws `.sessionExpired` if the server no longer knows the session.
    public static func connect(_ configuration: ZooKeeperConfiguration, resumingSession sessionID: Int64, password: [UInt8]) async throws
        -> ZooKeeperClient
    {
        let client = ZooKeeperClient(configuration: configuration, resuming: (sessionID, password))
        try await client.start()
        return client
    }

    func start() async throws {
        let promise = self.eventLoop.makePromise(of: Void.self)
        let controller = self.controller
        self.eventLoop.execute { controller.start(promise: promise) }
        try await promise.futureResult.get()
    }

    /// Closes the session (its ephemeral nodes go away at once) and the connection.
    ///
    /// Waits at most about two seconds for the server; never hangs. Calls made afterwards throw `.clientClosed`.
    public func close() async {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.submit { $0.close(promise: promise) }
        try? await promise.futureResult.get()
    }

    /// Closes the session as ``close()`` does, for a program that exits next: returns once the close request is
    /// written, without waiting for the server's answer (a round trip and the server's write of the close to its
    /// log). The server closes the session, and deletes its ephemeral nodes, as it reads the request.
    public func closeWithoutAnswer() async {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.submit { $0.close(awaitingAnswer: false, promise: promise) }
        try? await promise.futureResult.get()
    }

    /// The session id the server assigned (0 before the first session).
    public var sessionID: Int64 { self.controller.shared.withLockedValue { $0.sessionID } }

    /// The session's password, for `connect(_:resumingSession:password:)`.
    public var sessionPassword: [UInt8] { self.controller.shared.withLockedValue { $0.sessionPassword } }

    /// The session timeout the server granted.
    public var negotiatedSessionTimeout: Duration { self.controller.shared.withLockedValue { $0.negotiatedTimeout } }

    /// The member the client is (or was last) connected to, as `host:port`.
    public var connectedServer: String? { self.controller.shared.withLockedValue { $0.server } }

    /// The session's state changes: first the latest event (the current state, e.g. `.connected`), then every
    /// later one: disconnected, reconnected, expired, closed, authFailed.
    ///
    /// Every access returns a new, independent sequence with unbounded buffering. After the session ended, the
    /// sequence yields the terminal event and finishes.
    public var sessionEvents: AsyncStream<ZooKeeperSessionEvent> { self.controller.subscribe() }

    /// Hands `sink` the session's latest event, then every later one, then the end (as ``sessionEvents`` does, but
    /// without a stream or a task of its own, for a consumer that maps the events into a stream of its own).
    public func subscribeSessionEvents(_ sink: SessionEventSink) -> ZooKeeperSessionSubscription {
        self.controller.subscribe(sink)
    }

    /// How many one-shot watches the session holds, for tests.
    func oneShotWatchCount() async -> Int {
        let controller = self.controller
        return try! await self.eventLoop.submit { controller.oneShotWatchCount }.get()
    }

    /// Adds credentials to the session (sent again after every reconnect).
    ///
    /// A server that rejects them ends the session with `.authFailed`.
    public func addAuth(scheme: String, auth: [UInt8]) async throws {
        try await self.addAuth(ZooKeeperCredential(scheme: scheme, auth: auth))
    }

    /// Adds credentials to the session, e.g. `.digest(user: "pop", password: secret)`.
    public func addAuth(_ credential: ZooKeeperCredential) async throws {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.submit { $0.addAuth(credential, promise: promise) }
        try await promise.futureResult.get()
    }

    // MARK: Plumbing

    /// Sends one request and returns its reply body, or throws the server's error. The caller is resumed straight
    /// from the event loop when the reply arrives.
    func execute(
        _ opCode: ZooKeeperOpCode, path: String?, watch: WatchRegistration? = nil, body writeBody: (inout ByteBuffer) -> Void
    ) async throws -> ByteBuffer {
        var buffer = Self.allocator.buffer(capacity: 128)
        writeBody(&buffer)
        let body = buffer
        return try await withUnsafeThrowingContinuation { continuation in
            self.controller.submit(.request(opCode, path: path, body: body, reply: .continuation(continuation), watch: watch))
        }
    }

    private static let allocator = ByteBufferAllocator()

    /// Runs `work` on the event loop, in submission order.
    func submit(_ work: @escaping @Sendable (ZooKeeperSessionController) -> Void) {
        self.controller.submit(.work(work))
    }

    /// Checks a caller's path and returns the path the server sees.
    func serverPath(_ path: String, sequential: Bool = false) throws(ZooKeeperError) -> String {
        try ZooKeeperPath.validate(path, sequential: sequential)
        return ZooKeeperPath.serverPath(path, chroot: self.chroot)
    }

    func clientPath(_ serverPath: String) -> String {
        ZooKeeperPath.clientPath(serverPath, chroot: self.chroot)
    }

    func makeStreamID() -> Int {
        self.streamIDs.withLockedValue { id in
            id += 1
            return id
        }
    }
}

/// Runs a decoding step, turning malformed records into a `.protocolError` naming the path.
@inline(__always)
func decoding<T>(_ path: String?, _ body: () throws(JuteDecodingError) -> T) throws(ZooKeeperError) -> T {
    do {
        return try body()
    } catch {
        throw error.zooKeeperError(path: path)
    }
}
