import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Carries out what the session state machine decides: opens connections, writes, runs timers, completes
/// promises and publishes events. It is bound to one event loop; every method runs on it.
final class ZooKeeperSessionController: @unchecked Sendable {
    let eventLoop: any EventLoop
    private var stateMachine: ZooKeeperSessionStateMachine
    private let servers: [ZooKeeperConfiguration.Server]
    private let connector: any ZooKeeperConnector
    private let connectTimeout: TimeAmount
    private let maxFrameSize: Int
    private var logger: Logger

    private var channel: (any Channel)?
    private var connectionID = 0
    private var currentServer: ZooKeeperConfiguration.Server?
    private var flushScheduled = false
    private var attemptTimer: Scheduled<Void>?
    private var reconnectTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    private var connectDeadline: Scheduled<Void>?
    private var startPromise: EventLoopPromise<Void>?
    private var closeWaiters: [EventLoopPromise<Void>] = []

    /// State readable from any thread.
    struct Shared {
        var sessionID: Int64 = 0
        var sessionPassword: [UInt8] = []
        var negotiatedTimeout: Duration = .zero
        var server: String?
        var subscribers: [Int: SessionEventSink] = [:]
        var nextSubscriberID = 0
        var terminalEvent: ZooKeeperSessionEvent?
        /// The last event published, replayed to new subscribers so they learn the current state.
        var lastEvent: ZooKeeperSessionEvent?
        var finishedError: ZooKeeperError?
    }

    let shared = NIOLockedValueBox(Shared())

    init(
        eventLoop: any EventLoop, configuration: ZooKeeperConfiguration, connector: any ZooKeeperConnector = ZooKeeperTCPConnector(),
        firstServer: Int? = nil, firstXID: Int32 = 1, resuming: (id: Int64, password: [UInt8])? = nil
    ) {
        self.eventLoop = eventLoop
        self.servers = configuration.servers
        self.connector = connector
        self.maxFrameSize = configuration.maxBufferSize
        self.connectTimeout = TimeAmount(configuration.connectTimeout)
        self.logger = configuration.logger
        let sessionTimeout = TimeAmount(configuration.sessionTimeout)
        // Each attempt gets a share of the session timeout (as the Java client does), at least 1 s.
        let attempt = max(TimeAmount.nanoseconds(sessionTimeout.nanoseconds / Int64(max(configuration.servers.count, 1))), .seconds(1))
        self.stateMachine = ZooKeeperSessionStateMachine(
            configuration: .init(
                servers: configuration.servers.map(\.description),
                sessionTimeoutMilliseconds: Int32(clamping: sessionTimeout.nanoseconds / 1_000_000),
                maxFrameSize: configuration.maxBufferSize,
                chroot: configuration.chroot ?? "",
                credentials: configuration.credentials,
                firstServer: firstServer ?? Int.random(in: 0..<max(configuration.servers.count, 1)),
                attemptTimeout: min(attempt, TimeAmount(configuration.connectTimeout))
            ),
            firstXID: firstXID,
            resuming: resuming.map { .init(id: $0.id, password: $0.password, timeoutMilliseconds: 0) }
        )
    }

    // MARK: Calls from the client

    /// Starts connecting; the promise succeeds once the first session is established.
    func start(promise: EventLoopPromise<Void>) {
        self.eventLoop.preconditionInEventLoop()
        self.startPromise = promise
        let servers = self.servers.map(\.description).joined(separator: ",")
        self.connectDeadline = self.eventLoop.scheduleTask(in: self.connectTimeout) {
            self.run(self.stateMachine.connectDeadlineReached(servers: servers))
        }
        self.run(self.stateMachine.start())
    }

    func send(opCode: ZooKeeperOpCode, path: String?, body: ByteBuffer, promise: EventLoopPromise<ByteBuffer>, watch: WatchRegistration?) {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.sendRequest(opCode: opCode, path: path, body: body, promise: promise, watch: watch))
    }

    func addAuth(_ credential: ZooKeeperCredential, promise: EventLoopPromise<Void>) {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.addAuth(credential, promise: promise))
    }

    func close(promise: EventLoopPromise<Void>) {
        self.eventLoop.assertInEventLoop()
        if self.stateMachine.isFinished {
            promise.succeed()
            return
        }
        self.closeWaiters.append(promise)
        self.run(self.stateMachine.closeRequested(timeout: .seconds(2)))
    }

    func cancelWatch(_ future: EventLoopFuture<ZooKeeperWatchEvent>) {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.cancelWatch(future))
    }

    /// How many one-shot watches the session holds, for tests.
    var oneShotWatchCount: Int {
        self.eventLoop.assertInEventLoop()
        return self.stateMachine.watches.oneShotCount
    }

    func streamTerminated(id: Int) {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.streamTerminated(id: id))
    }

    /// A new stream of session events from now on.
    func subscribe() -> AsyncStream<ZooKeeperSessionEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ZooKeeperSessionEvent.self, bufferingPolicy: .unbounded)
        let subscription = self.subscribe(SessionEventSink(yield: { continuation.yield($0) }, finish: { continuation.finish() }))
        continuation.onTermination = { _ in subscription.cancel() }
        return stream
    }

    /// Hands `sink` the latest event, then every later one, then the end; no task runs in between.
    func subscribe(_ sink: SessionEventSink) -> ZooKeeperSessionSubscription {
        let id: Int? = self.shared.withLockedValue { shared in
            if let terminal = shared.terminalEvent {
                sink.yield(terminal)
                sink.finish()
                return nil
            }
            if let last = shared.lastEvent { sink.yield(last) }
            shared.nextSubscriberID += 1
            shared.subscribers[shared.nextSubscriberID] = sink
            return shared.nextSubscriberID
        }
        guard let id else { return ZooKeeperSessionSubscription {} }
        return ZooKeeperSessionSubscription { [weak self] in
            _ = self?.shared.withLockedValue { $0.subscribers.removeValue(forKey: id) }
        }
    }

    // MARK: Calls from the channel handler

    func connectionActive(_ id: Int, channel: any Channel) {
        guard id == self.connectionID else {
            channel.close(promise: nil)
            return
        }
        self.channel = channel
        self.attemptTimer?.cancel()
        self.attemptTimer = self.eventLoop.scheduleTask(in: self.stateMachine.configuration.attemptTimeout) {
            guard id == self.connectionID else { return }
            self.run(self.stateMachine.attemptTimedOut())
        }
        self.run(self.stateMachine.connectionEstablished())
    }

    func messageReceived(_ message: ZooKeeperServerMessage, connectionID id: Int) {
        guard id == self.connectionID else { return }
        switch message {
        case .connectResponse(let response):
            self.run(self.stateMachine.connectResponseReceived(response, serverName: self.currentServer?.description ?? "?"))
        case .reply(let xid, let zxid, let error, let body):
            self.run(self.stateMachine.replyReceived(xid: xid, zxid: zxid, error: error, body: body))
        case .watchEvent(let event, _):
            self.run(self.stateMachine.watchEventReceived(event))
        case .authReply(let error):
            self.run(self.stateMachine.authReplyReceived(error: error))
        case .pingReply:
            break
        }
    }

    func connectionClosed(_ id: Int, error: ZooKeeperError?) {
        guard id == self.connectionID else { return }
        self.channel = nil
        self.attemptTimer?.cancel()
        if let error {
            self.logger.debug("zookeeper connection closed", metadata: ["zk.server": "\(self.currentServer?.description ?? "?")", "error": "\(error.message)"])
        }
        self.run(self.stateMachine.connectionClosed(error: error))
    }

    func pingDue(_ id: Int) {
        guard id == self.connectionID else { return }
        self.run(self.stateMachine.pingDue())
    }

    func readTimedOut(_ id: Int) {
        guard id == self.connectionID else { return }
        self.run(self.stateMachine.readTimedOut())
    }

    // MARK: Running actions

    private func run(_ action: ZooKeeperSessionStateMachine.Action) {
        switch action {
        case .none:
            break
        case .connect(let server, let timeout):
            self.openConnection(server: server, timeout: timeout)
        case .sendConnectRequest(let request):
            self.write(.connect(request))
        case .write(let message):
            self.write(message)
        case .established(let established):
            self.established(established)
        case .succeedRequest(let promise, let body, let deliveries):
            for delivery in deliveries { delivery.deliver() }
            promise.succeed(body)
        case .failRequest(let promise, let error, let deliveries):
            for delivery in deliveries { delivery.deliver() }
            promise.fail(error)
        case .succeedAuth(let promise):
            promise?.succeed()
        case .failAuth(let promise, let error):
            promise.fail(error)
        case .deliverWatchEvents(let deliveries):
            for delivery in deliveries { delivery.deliver() }
        case .cancelWatch(let delivery, let removal):
            delivery.deliver()
            if let removal { self.write(removal) }
        case .closeConnection(let error):
            self.logger.debug("closing zookeeper connection", metadata: ["zk.server": "\(self.currentServer?.description ?? "?")", "reason": "\(error.message)"])
            self.channel?.close(promise: nil)
        case .reconnect(let cleanup, let event, let next):
            self.runCleanup(cleanup)
            self.channel?.close(promise: nil)
            self.channel = nil
            if let event {
                self.logger.info("zookeeper session disconnected", metadata: ["zk.session": "\(self.sessionIDText)", "zk.server": "\(self.currentServer?.description ?? "?")"])
                self.publish(event)
            }
            switch next {
            case .connect(let server, let timeout): self.openConnection(server: server, timeout: timeout)
            case .wait(let delay): self.scheduleReconnect(delay: delay)
            }
        case .sendCloseSession(let message, let timeout):
            self.write(message)
            self.closeTimer = self.eventLoop.scheduleTask(in: timeout) {
                self.run(self.stateMachine.closeTimedOut())
            }
        case .finish(let cleanup, let event, let error):
            self.finish(cleanup: cleanup, event: event, error: error)
        case .unexpectedEvent(let unexpected):
            // A bug in this client: stop a debug build at once; a release build reports it and carries on.
            self.logger.error(
                "zookeeper session received an event its state cannot receive",
                metadata: ["zk.session": "\(self.sessionIDText)", "zk.event": "\(unexpected.event)", "zk.state": "\(unexpected.state)"]
            )
            assertionFailure("\(unexpected)")
        }
    }

    private var sessionIDText: String { "0x" + String(self.stateMachine.session?.id ?? 0, radix: 16) }

    private func openConnection(server index: Int, timeout: TimeAmount) {
        self.connectionID += 1
        let id = self.connectionID
        let server = self.servers[index]
        self.currentServer = server
        self.logger.debug("connecting to zookeeper", metadata: ["zk.server": "\(server)"])
        let future = self.connector.connect(to: server, on: self.eventLoop, timeout: timeout, maxFrameSize: self.maxFrameSize) {
            ZooKeeperChannelHandler(controller: self, connectionID: id)
        }
        future.whenFailure { error in
            guard id == self.connectionID else { return }
            self.logger.debug("zookeeper connect failed", metadata: ["zk.server": "\(server)", "error": "\(error)"])
            self.run(self.stateMachine.connectionFailed())
        }
    }

    private func scheduleReconnect(delay: TimeAmount) {
        self.reconnectTimer = self.eventLoop.scheduleTask(in: delay) {
            self.run(self.stateMachine.reconnectTimerFired())
        }
    }

    private func write(_ message: ZooKeeperClientMessage) {
        guard let channel = self.channel else { return }
        channel.write(message, promise: nil)
        // Coalesce the flushes of requests issued together into one system call.
        if !self.flushScheduled {
            self.flushScheduled = true
            self.eventLoop.execute {
                self.flushScheduled = false
                self.channel?.flush()
            }
        }
    }

    private func established(_ established: ZooKeeperSessionStateMachine.Established) {
        self.attemptTimer?.cancel()
        if let channel {
            let idle = IdleStateHandler(readTimeout: established.readTimeout, writeTimeout: established.pingInterval)
            try? channel.pipeline.syncOperations.addHandler(idle, position: .first)
        }
        for message in established.messages { self.write(message) }
        let session = self.stateMachine.session!
        self.shared.withLockedValue { shared in
            shared.sessionID = session.id
            shared.sessionPassword = session.password
            shared.negotiatedTimeout = .milliseconds(Int64(session.timeoutMilliseconds))
            shared.server = self.currentServer?.description
        }
        self.logger.info(
            "zookeeper session established",
            metadata: ["zk.session": "\(self.sessionIDText)", "zk.server": "\(self.currentServer?.description ?? "?")", "zk.timeout": "\(session.timeoutMilliseconds)ms"]
        )
        self.publish(established.event)
        if case .connected = established.event {
            self.connectDeadline?.cancel()
            self.startPromise?.succeed()
            self.startPromise = nil
        }
    }

    private func runCleanup(_ cleanup: ZooKeeperSessionStateMachine.Cleanup) {
        for delivery in cleanup.watches { delivery.deliver() }
        for (promise, error) in cleanup.requests { promise.fail(error) }
        for (promise, error) in cleanup.auths { promise.fail(error) }
    }

    private func finish(cleanup: ZooKeeperSessionStateMachine.Cleanup, event: ZooKeeperSessionEvent?, error: ZooKeeperError) {
        self.connectionID += 1
        for timer in [self.attemptTimer, self.reconnectTimer, self.closeTimer, self.connectDeadline] { timer?.cancel() }
        self.runCleanup(cleanup)
        self.channel?.close(promise: nil)
        self.channel = nil
        if let event {
            self.logger.info("zookeeper session ended", metadata: ["zk.session": "\(self.sessionIDText)", "zk.event": "\(event)"])
        }
        let subscribers = self.shared.withLockedValue { shared in
            shared.finishedError = error
            shared.terminalEvent = event ?? .closed
            defer { shared.subscribers = [:] }
            return shared.subscribers
        }
        for subscriber in subscribers.values {
            if let event { subscriber.yield(event) }
            subscriber.finish()
        }
        self.startPromise?.fail(error)
        self.startPromise = nil
        for waiter in self.closeWaiters { waiter.succeed() }
        self.closeWaiters = []
    }

    private func publish(_ event: ZooKeeperSessionEvent) {
        // Yield under the lock, so a subscriber created concurrently sees each event exactly once.
        self.shared.withLockedValue { shared in
            shared.lastEvent = event
            for subscriber in shared.subscribers.values { subscriber.yield(event) }
        }
    }
}
