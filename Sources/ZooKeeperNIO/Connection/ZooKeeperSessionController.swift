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
    /// Completed once the next flush of `outbound` is written (a close that does not await its answer).
    private var flushWaiters: [EventLoopPromise<Void>] = []
    /// Frames written since the last flush, sent in one buffer at the end of the event-loop tick.
    private var outbound: ByteBuffer?
    private let encoder: ZooKeeperMessageEncoder
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
        self.encoder = ZooKeeperMessageEncoder(maxFrameSize: configuration.maxBufferSize)
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

    // MARK: Submissions from any thread

    /// Work for the event loop: a request (the common case, without a closure to allocate) or anything else.
    enum Submission: Sendable {
        case request(ZooKeeperOpCode, path: String?, body: ByteBuffer, reply: ZooKeeperReply, watch: WatchRegistration?)
        case work(@Sendable (ZooKeeperSessionController) -> Void)
    }

    struct Submissions {
        var queue: [Submission] = []
        /// Whether a drain of the queue is sure to come: submitters need not wake the event loop.
        var drainPending = false
    }

    private let submissions = NIOLockedValueBox(Submissions())

    /// Runs `submission` on the event loop, in submission order.
    ///
    /// Calls from other threads are queued and drained by one event-loop task, so many concurrent requests cost
    /// one wake-up of the loop instead of one each. While the connection batches its reads (many requests in
    /// flight), the queue is drained with each batch instead, without waking the loop at all.
    func submit(_ submission: Submission) {
        if self.eventLoop.inEventLoop, self.submissions.withLockedValue({ $0.queue.isEmpty }) {
            self.run(submission)
            return
        }
        let wake = self.submissions.withLockedValue { submissions in
            submissions.queue.append(submission)
            if submissions.drainPending { return false }
            submissions.drainPending = true
            return true
        }
        if wake {
            self.eventLoop.execute { self.drainSubmissions() }
        }
    }

    /// Runs the queued submissions; later ones wake the loop again.
    func drainSubmissions() {
        self.eventLoop.assertInEventLoop()
        var batch: [Submission] = []
        self.submissions.withLockedValue { submissions in
            swap(&submissions.queue, &batch)
            submissions.drainPending = false
        }
        for submission in batch { self.run(submission) }
    }

    /// Makes submitters leave the queue to the next drain, which the caller has scheduled. (A drain already
    /// scheduled by `submit` ends the hold early, which only costs a wake-up.)
    func holdSubmissions() {
        self.submissions.withLockedValue { $0.drainPending = true }
    }

    private func run(_ submission: Submission) {
        switch submission {
        case .request(let opCode, let path, let body, let reply, let watch):
            self.send(opCode: opCode, path: path, body: body, reply: reply, watch: watch)
        case .work(let work):
            work(self)
        }
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
        self.send(opCode: opCode, path: path, body: body, reply: .promise(promise), watch: watch)
    }

    func send(opCode: ZooKeeperOpCode, path: String?, body: ByteBuffer, reply: ZooKeeperReply, watch: WatchRegistration?) {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.sendRequest(opCode: opCode, path: path, body: body, reply: reply, watch: watch))
    }

    func addAuth(_ credential: ZooKeeperCredential, promise: EventLoopPromise<Void>) {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.addAuth(credential, promise: promise))
    }

    func close(awaitingAnswer: Bool = true, promise: EventLoopPromise<Void>) {
        self.eventLoop.assertInEventLoop()
        if self.stateMachine.isFinished {
            promise.succeed()
            return
        }
        self.closeWaiters.append(promise)
        self.run(self.stateMachine.closeRequested(timeout: .seconds(2), awaitingAnswer: awaitingAnswer))
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

    /// How long the connection should wait before its next read, so that the replies arriving meanwhile are read
    /// together; nil to read at once.
    ///
    /// Only while many requests are in flight: the server has work queued, so the wait costs no throughput. It is
    /// 4 µs per request in flight, at most 1 ms, which caps a connection at no less than 250,000 requests a second.
    func readDelay(_ id: Int) -> TimeAmount? {
        let inFlight = self.stateMachine.pending.count
        guard id == self.connectionID, inFlight >= Self.deepPipeline else { return nil }
        return min(Self.maximumReadDelay, .nanoseconds(Int64(inFlight) * 4_000))
    }

    /// The requests in flight from which reads are batched.
    static let deepPipeline = 64
    /// The longest wait before a read.
    static let maximumReadDelay = TimeAmount.milliseconds(1)

    func connectionActive(_ id: Int, channel: any Channel) {
        guard id == self.connectionID else {
            channel.close(promise: nil)
            return
        }
        self.channel = channel
        self.outbound = nil
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
        self.outbound = nil
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
            self.outbound = nil
            if let event {
                self.logger.info("zookeeper session disconnected", metadata: ["zk.session": "\(self.sessionIDText)", "zk.server": "\(self.currentServer?.description ?? "?")"])
                self.publish(event)
            }
            switch next {
            case .connect(let server, let timeout): self.openConnection(server: server, timeout: timeout)
            case .wait(let delay): self.scheduleReconnect(delay: delay)
            }
        case .sendCloseSession(let message, let timeout, let reportWritten):
            self.write(message)
            if reportWritten {
                let written = self.eventLoop.makePromise(of: Void.self)
                self.flushWaiters.append(written)
                written.futureResult.whenComplete { _ in self.run(self.stateMachine.closeSessionWritten()) }
            }
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
        let future = self.connector.connect(to: server, on: self.eventLoop, timeout: timeout) {
            ZooKeeperChannelHandler(controller: self, connectionID: id, maxFrameSize: self.maxFrameSize)
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

    /// Encodes `message` into the buffer of frames sent at the end of this event-loop tick: the requests issued
    /// together leave in one buffer and one system call.
    private func write(_ message: ZooKeeperClientMessage) {
        guard let channel = self.channel else { return }
        if self.outbound == nil { self.outbound = channel.allocator.buffer(capacity: 1024) }
        do {
            try self.encoder.encode(data: message, out: &self.outbound!)
        } catch {
            // Refused before it reached the wire (the state machine checks requests first): the connection closes.
            channel.pipeline.fireErrorCaught(error)
            return
        }
        if !self.flushScheduled {
            self.flushScheduled = true
            self.eventLoop.execute {
                self.flushScheduled = false
                let waiters = self.flushWaiters
                self.flushWaiters = []
                guard let buffer = self.outbound, let channel = self.channel else {
                    for waiter in waiters { waiter.succeed() }
                    return
                }
                self.outbound = nil
                guard !waiters.isEmpty else {
                    channel.writeAndFlush(buffer, promise: nil)
                    return
                }
                let written = self.eventLoop.makePromise(of: Void.self)
                channel.writeAndFlush(buffer, promise: written)
                written.futureResult.whenComplete { _ in
                    for waiter in waiters { waiter.succeed() }
                }
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
        self.outbound = nil
        for waiter in self.flushWaiters { waiter.succeed() }
        self.flushWaiters = []
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
