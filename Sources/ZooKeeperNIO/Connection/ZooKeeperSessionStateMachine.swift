import DequeModule
import NIOCore

/// The protocol logic of one ZooKeeper session, across all the connections it uses.
///
/// A pure value: every event is a `mutating func` that returns an `Action` for `ZooKeeperSessionController`
/// to carry out. Nothing here touches a channel, a timer or a promise's result, so the whole session (connect,
/// handshake, pipelined requests, pings, reconnects to other members, expiry, close) is tested without sockets.
struct ZooKeeperSessionStateMachine {
    /// What the machine needs to know about the client's configuration.
    struct Configuration {
        /// The ensemble members as `host:port`, for events and messages.
        var servers: [String]
        var sessionTimeoutMilliseconds: Int32
        var maxFrameSize: Int
        /// The chroot prefix ("" for none), stripped from event paths.
        var chroot: String
        var credentials: [ZooKeeperCredential]
        /// The first server to try (random in production).
        var firstServer: Int
        /// How long one connection attempt (TCP connect and handshake) may take.
        var attemptTimeout: TimeAmount
    }

    /// The session the server granted.
    struct Session: Hashable {
        var id: Int64
        var password: [UInt8]
        var timeoutMilliseconds: Int32
    }

    enum State {
        /// Not started.
        case idle
        /// Opening a TCP connection to a server.
        case connecting(server: Int)
        /// Connected; the ConnectRequest is sent and its answer awaited.
        case handshaking(server: Int)
        /// The session is established on this server.
        case connected(server: Int)
        /// Every server failed in this round; waiting before the next one.
        case waitingToReconnect
        /// closeSession was sent; waiting for its answer.
        case closing
        /// Finished for good; new requests fail with this error.
        case finished(ZooKeeperError)
    }

    /// A request waiting for its reply, in send order.
    struct PendingRequest {
        enum Kind {
            case caller(ZooKeeperReply, WatchRegistration?)
            case setWatches
            /// Removes the server's watch of a cancelled one-shot watch or of a persistent watch nobody follows any
            /// more; its answer (NOWATCHER when it fired or went meanwhile) changes nothing.
            case removeWatches
            case closeSession
        }

        var xid: Int32
        var opCode: ZooKeeperOpCode
        /// The path as the caller gave it, for error messages.
        var path: String?
        var kind: Kind
    }

    /// A request made while no connection was up, sent once one is.
    struct QueuedRequest {
        var opCode: ZooKeeperOpCode
        var path: String?
        var body: ByteBuffer
        var reply: ZooKeeperReply
        var watch: WatchRegistration?
    }

    /// What a newly established connection needs.
    struct Established {
        /// The session event to publish.
        var event: ZooKeeperSessionEvent
        /// Auth packets, SetWatches and queued requests, in order.
        var messages: [ZooKeeperClientMessage]
        var readTimeout: TimeAmount
        var pingInterval: TimeAmount
    }

    /// Everything that must be failed or finished because the connection or the session ended.
    struct Cleanup {
        var requests: [(ZooKeeperReply, ZooKeeperError)] = []
        var auths: [(EventLoopPromise<Void>, ZooKeeperError)] = []
        var watches: [WatchDelivery] = []

        var isEmpty: Bool { self.requests.isEmpty && self.auths.isEmpty && self.watches.isEmpty }
    }

    enum Action {
        case none
        /// Open a connection to server `index`; the attempt may take `timeout`.
        case connect(server: Int, timeout: TimeAmount)
        /// Send the handshake on the new connection.
        case sendConnectRequest(ConnectRequest)
        case write(ZooKeeperClientMessage)
        case established(Established)
        case succeedRequest(ZooKeeperReply, ByteBuffer, [WatchDelivery])
        case failRequest(ZooKeeperReply, ZooKeeperError, [WatchDelivery])
        case succeedAuth(EventLoopPromise<Void>?)
        case failAuth(EventLoopPromise<Void>, ZooKeeperError)
        case deliverWatchEvents([WatchDelivery])
        /// Complete a cancelled watch, then send the removal of its server watch, if any.
        case cancelWatch(WatchDelivery, removal: ZooKeeperClientMessage?)
        /// Close the current connection (a read timeout, a protocol error); `connectionClosed` follows.
        case closeConnection(ZooKeeperError)
        /// The connection is gone but the session may live: fail what was in flight, tell the owner, and then
        /// connect (or wait).
        case reconnect(Cleanup, event: ZooKeeperSessionEvent?, next: NextStep)
        /// Start closing: send closeSession and wait at most `timeout` for its answer; with `reportWritten`, also
        /// report `closeSessionWritten` once the request is on the connection.
        case sendCloseSession(ZooKeeperClientMessage, timeout: TimeAmount, reportWritten: Bool)
        /// The session is over for good: fail everything, publish the event, close any connection.
        case finish(Cleanup, event: ZooKeeperSessionEvent?, error: ZooKeeperError)
        /// The event cannot happen in this state: a bug in the client. Stop in a debug build, log an error in release.
        case unexpectedEvent(UnexpectedEvent)
    }

    /// An event that the current state cannot receive, for the controller to report.
    struct UnexpectedEvent: Hashable, CustomStringConvertible {
        var event: String
        var state: String

        var description: String { "the session received \(self.event) while \(self.state)" }
    }

    enum NextStep: Hashable {
        case connect(server: Int, timeout: TimeAmount)
        case wait(TimeAmount)
    }

    private(set) var state: State = .idle
    let configuration: Configuration
    private(set) var session: Session?
    /// The highest zxid seen in a reply; sent on reconnect so the server never goes back in time.
    private(set) var lastZxidSeen: Int64 = 0
    private(set) var nextXID: Int32
    private(set) var pending: Deque<PendingRequest> = []
    private(set) var queued: Deque<QueuedRequest> = []
    /// addAuth calls whose auth packet is in flight (nil for credentials re-sent on reconnect), oldest first.
    private var pendingAuths: Deque<(scheme: String, promise: EventLoopPromise<Void>?)> = []
    /// addAuth calls made while disconnected.
    private var queuedAuths: [(ZooKeeperCredential, EventLoopPromise<Void>)] = []
    private(set) var credentials: [ZooKeeperCredential]
    private(set) var watches = ZooKeeperWatchRegistry()
    private var lastServer: Int
    private var failedAttempts = 0
    /// Whether a session was established at least once (a resumed session given at init counts only once the
    /// server accepts it).
    private var hasEstablished = false

    /// `resuming` continues an existing session (its id and password) instead of creating one.
    init(configuration: Configuration, firstXID: Int32 = 1, resuming: Session? = nil) {
        self.configuration = configuration
        self.session = resuming
        self.credentials = configuration.credentials
        self.nextXID = firstXID
        self.lastServer = configuration.firstServer
    }

    var isFinished: Bool {
        if case .finished = self.state { return true }
        return false
    }

    var isConnected: Bool {
        if case .connected = self.state { return true }
        return false
    }

    // MARK: Connecting

    mutating func start() -> Action {
        switch self.state {
        case .idle:
            self.state = .connecting(server: self.lastServer)
            return .connect(server: self.lastServer, timeout: self.configuration.attemptTimeout)
        case .connecting, .handshaking, .connected, .waitingToReconnect, .closing, .finished:
            // The controller starts a session once.
            return self.unexpected("start")
        }
    }

    mutating func reconnectTimerFired() -> Action {
        switch self.state {
        case .waitingToReconnect:
            let server = self.advanceServer()
            self.state = .connecting(server: server)
            return .connect(server: server, timeout: self.configuration.attemptTimeout)
        case .closing, .finished:
            // The session ended (its connect deadline passed, or it was closed) as the timer fired: the cancellation
            // came too late to stop it, and there is nothing left to reconnect.
            return .none
        case .idle, .connecting, .handshaking, .connected:
            // The timer is set only on entering waitingToReconnect, which is left only by it or by finishing.
            return self.unexpected("reconnectTimerFired")
        }
    }

    /// The TCP connection is up: send the handshake.
    mutating func connectionEstablished() -> Action {
        let server: Int
        switch self.state {
        case .connecting(let connecting):
            server = connecting
        case .idle, .handshaking, .connected, .waitingToReconnect, .closing, .finished:
            // Only the attempt begun on entering `connecting` carries the current connection id; the controller
            // drops callbacks of older ones.
            return self.unexpected("connectionEstablished")
        }
        self.state = .handshaking(server: server)
        let request: ConnectRequest
        if let session {
            request = ConnectRequest(
                lastZxidSeen: self.lastZxidSeen, timeout: self.configuration.sessionTimeoutMilliseconds,
                sessionID: session.id, password: session.password
            )
        } else {
            request = .newSession(timeoutMilliseconds: self.configuration.sessionTimeoutMilliseconds)
        }
        return .sendConnectRequest(request)
    }

    /// A connection attempt failed before the handshake finished (refused, timed out).
    mutating func connectionFailed() -> Action {
        switch self.state {
        case .connecting, .handshaking:
            return self.moveToNextServer(cleanup: Cleanup(), event: nil)
        case .idle, .connected, .waitingToReconnect, .closing, .finished:
            // A connect fails before its channel is active, so only while `connecting` (or, for the channel's
            // initializer, `handshaking`); later attempts carry a new connection id.
            return self.unexpected("connectionFailed")
        }
    }

    /// The attempt's time ran out; close it (a `connectionClosed` follows).
    mutating func attemptTimedOut() -> Action {
        switch self.state {
        case .connecting(let server), .handshaking(let server):
            return .closeConnection(ZooKeeperError(code: .connectTimeout, message: "\(self.configuration.servers[server]) did not complete the handshake in time"))
        case .idle, .connected, .waitingToReconnect, .closing, .finished:
            // The attempt timer runs from channelActive until the session is established or the connection closes,
            // and is cancelled by either.
            return self.unexpected("attemptTimedOut")
        }
    }

    mutating func connectResponseReceived(_ response: ConnectResponse, serverName: String) -> Action {
        guard case .handshaking(let server) = self.state else {
            return .closeConnection(ZooKeeperError(code: .protocolError, message: "unexpected ConnectResponse"))
        }
        if response.timeout <= 0 {
            guard let session else {
                return .closeConnection(ZooKeeperError(code: .protocolError, message: "\(serverName) refused to create a session"))
            }
            let error = ZooKeeperError(
                code: .sessionExpired,
                message: "session 0x\(String(session.id, radix: 16)) expired: its ephemeral nodes and watches are gone; connect a new client"
            )
            return self.finish(error: error, event: .expired(sessionID: session.id))
        }
        let isNew = !self.hasEstablished
        self.hasEstablished = true
        self.session = Session(id: response.sessionID, password: response.password, timeoutMilliseconds: response.timeout)
        self.state = .connected(server: server)
        self.failedAttempts = 0

        var messages: [ZooKeeperClientMessage] = []
        // Credentials first, so every later request runs with them.
        for credential in self.credentials {
            messages.append(Self.authMessage(credential))
            self.pendingAuths.append((credential.scheme, nil))
        }
        for (credential, promise) in self.queuedAuths {
            self.credentials.append(credential)
            messages.append(Self.authMessage(credential))
            self.pendingAuths.append((credential.scheme, promise))
        }
        self.queuedAuths = []
        // Restore watches before anything else, with the last zxid seen: the server fires at once every watch
        // whose node changed while we were away.
        if !self.watches.isEmpty {
            for message in self.watches.setWatchesRequests(relativeZxid: self.lastZxidSeen) {
                guard case .request(let xid, let opCode, _) = message else { continue }
                self.pending.append(PendingRequest(xid: xid, opCode: opCode, path: nil, kind: .setWatches))
                messages.append(message)
            }
        }
        while let request = self.queued.popFirst() {
            let xid = self.takeXID()
            self.pending.append(PendingRequest(xid: xid, opCode: request.opCode, path: request.path, kind: .caller(request.reply, request.watch)))
            messages.append(.request(xid: xid, opCode: request.opCode, body: request.body))
        }
        let readTimeout = TimeAmount.milliseconds(Int64(response.timeout) * 2 / 3)
        let event: ZooKeeperSessionEvent =
            isNew
            ? .connected(sessionID: response.sessionID, server: serverName, negotiatedTimeout: .milliseconds(Int64(response.timeout)))
            : .reconnected(sessionID: response.sessionID, server: serverName)
        return .established(Established(event: event, messages: messages, readTimeout: readTimeout, pingInterval: .nanoseconds(readTimeout.nanoseconds / 2)))
    }

    // MARK: Requests

    mutating func sendRequest(
        opCode: ZooKeeperOpCode, path: String?, body: ByteBuffer, promise: EventLoopPromise<ByteBuffer>, watch: WatchRegistration?
    ) -> Action {
        self.sendRequest(opCode: opCode, path: path, body: body, reply: .promise(promise), watch: watch)
    }

    mutating func sendRequest(opCode: ZooKeeperOpCode, path: String?, body: ByteBuffer, reply promise: ZooKeeperReply, watch: WatchRegistration?) -> Action {
        // The header adds 8 bytes to the body.
        if body.readableBytes + 8 > self.configuration.maxFrameSize {
            let error = ZooKeeperError(
                code: .frameTooLarge, path: path,
                message: "the request for \(path ?? "the session") is \(body.readableBytes + 8) bytes, above the \(self.configuration.maxFrameSize)-byte limit (jute.maxbuffer); it was not sent"
            )
            return .failRequest(promise, error, watch?.fail(error).map { [$0] } ?? [])
        }
        switch self.state {
        case .connected:
            let xid = self.takeXID()
            self.pending.append(PendingRequest(xid: xid, opCode: opCode, path: path, kind: .caller(promise, watch)))
            return .write(.request(xid: xid, opCode: opCode, body: body))
        case .idle, .connecting, .handshaking, .waitingToReconnect:
            self.queued.append(QueuedRequest(opCode: opCode, path: path, body: body, reply: promise, watch: watch))
            return .none
        case .closing:
            let error = ZooKeeperError(code: .clientClosed, path: path)
            return .failRequest(promise, error, watch?.fail(error).map { [$0] } ?? [])
        case .finished(var error):
            error.path = path
            error.message = path.map { "cannot run the request on \($0): " + error.message } ?? error.message
            return .failRequest(promise, error, watch?.fail(error).map { [$0] } ?? [])
        }
    }

    mutating func addAuth(_ credential: ZooKeeperCredential, promise: EventLoopPromise<Void>) -> Action {
        switch self.state {
        case .connected:
            self.credentials.append(credential)
            self.pendingAuths.append((credential.scheme, promise))
            return .write(Self.authMessage(credential))
        case .idle, .connecting, .handshaking, .waitingToReconnect:
            self.queuedAuths.append((credential, promise))
            return .none
        case .closing:
            return .failAuth(promise, ZooKeeperError(code: .clientClosed))
        case .finished(let error):
            return .failAuth(promise, error)
        }
    }

    /// A reply to a request arrived; it must answer the oldest pending request.
    mutating func replyReceived(xid: Int32, zxid: Int64, error: Int32, body: ByteBuffer) -> Action {
        switch self.state {
        case .connected, .closing:
            break
        case .handshaking:
            return .closeConnection(ZooKeeperError(code: .protocolError, message: "a reply arrived before the session was established"))
        case .waitingToReconnect:
            // Read from the connection just closed before its channel stopped reading; its requests are failed.
            return .none
        case .idle, .connecting, .finished:
            // No connection of the current id is open.
            return self.unexpected("replyReceived")
        }
        guard let request = self.pending.first, request.xid == xid else {
            let expected = self.pending.first.map { "\($0.xid)" } ?? "none"
            return .closeConnection(
                ZooKeeperError(code: .protocolError, message: "the server answered xid \(xid) while xid \(expected) was the oldest request; closing the connection")
            )
        }
        self.pending.removeFirst()
        if zxid > self.lastZxidSeen { self.lastZxidSeen = zxid }

        switch request.kind {
        case .setWatches, .removeWatches:
            return .none
        case .closeSession:
            return self.finish(error: ZooKeeperError(code: .clientClosed), event: .closed)
        case .caller(let promise, let watch):
            let code = ZooKeeperError.Code(rawValue: error)
            if error == 0 {
                var deliveries: [WatchDelivery] = []
                if case .removal(let serverPath, let type) = watch {
                    deliveries = self.watches.remove(serverPath: serverPath, type: type, userPath: request.path ?? serverPath)
                } else if let watch {
                    self.watches.add(watch, nodeExists: true)
                }
                return .succeedRequest(promise, body, deliveries)
            }
            if code == .noNode, request.opCode == .exists, let watch {
                // exists on a missing node still sets a watch, which fires when the node is created.
                self.watches.add(watch, nodeExists: false)
                return .failRequest(promise, ZooKeeperError(code: code, path: request.path), [])
            }
            let zkError = ZooKeeperError(code: code, path: request.path)
            return .failRequest(promise, zkError, watch?.fail(zkError).map { [$0] } ?? [])
        }
    }

    mutating func authReplyReceived(error: Int32) -> Action {
        switch self.state {
        case .connected, .closing:
            break
        case .handshaking:
            return .closeConnection(ZooKeeperError(code: .protocolError, message: "an auth reply arrived before the session was established"))
        case .waitingToReconnect:
            // Read from the connection just closed; its auths are re-sent on the next one.
            return .none
        case .idle, .connecting, .finished:
            return self.unexpected("authReplyReceived")
        }
        let auth = self.pendingAuths.popFirst()
        if error == 0 {
            return .succeedAuth(auth?.promise)
        }
        let scheme = auth?.scheme ?? "unknown"
        let failure = ZooKeeperError(
            code: .authFailed,
            message: "the server rejected the credentials for scheme '\(scheme)' and closed the session's connection; check the credentials and connect a new client"
        )
        if let promise = auth?.promise {
            var action = self.finish(error: failure, event: .authFailed(scheme: scheme))
            if case .finish(var cleanup, let event, let error) = action {
                cleanup.auths.append((promise, failure))
                action = .finish(cleanup, event: event, error: error)
            }
            return action
        }
        return self.finish(error: failure, event: .authFailed(scheme: scheme))
    }

    mutating func watchEventReceived(_ event: WatcherEvent) -> Action {
        switch self.state {
        case .connected, .closing:
            break
        case .handshaking:
            return .closeConnection(ZooKeeperError(code: .protocolError, message: "a watch event arrived before the session was established"))
        case .waitingToReconnect:
            // Read from the connection just closed: the watch is restored on the next connection, where the server
            // fires it again if its node changed meanwhile.
            return .none
        case .idle, .connecting, .finished:
            return self.unexpected("watchEventReceived")
        }
        // Type 0 (none) carries a session state change, which reaches the client through the connection itself.
        guard event.type > 0 else { return .none }
        let type = ZooKeeperWatchEvent.EventType(rawValue: event.type)
        let userEvent = ZooKeeperWatchEvent(type: type, path: ZooKeeperPath.clientPath(event.path, chroot: self.configuration.chroot))
        let deliveries = self.watches.trigger(type: type, serverPath: event.path, event: userEvent)
        return deliveries.isEmpty ? .none : .deliverWatchEvents(deliveries)
    }

    /// The owner of a one-shot watch cancelled it.
    mutating func cancelWatch(_ future: EventLoopFuture<ZooKeeperWatchEvent>) -> Action {
        let chroot = self.configuration.chroot
        guard let cancelled = self.watches.cancel(future, userPath: { ZooKeeperPath.clientPath($0, chroot: chroot) }) else {
            // It fired or ended before the cancellation reached the event loop.
            return .none
        }
        switch self.state {
        case .connected:
            // A read in flight that sets the same kind of watch on the node needs the server's watch as well.
            let registering = self.pending.contains { request in
                guard case .caller(_, let registration?) = request.kind else { return false }
                return registration.sets(cancelled.type, on: cancelled.serverPath)
            }
            guard !cancelled.stillNeeded, !registering else { return .cancelWatch(cancelled.delivery, removal: nil) }
            let xid = self.takeXID()
            self.pending.append(PendingRequest(xid: xid, opCode: .removeWatches, path: nil, kind: .removeWatches))
            var body = ByteBuffer()
            body.writeJuteString(cancelled.serverPath)
            body.writeInteger(cancelled.type.rawValue)
            return .cancelWatch(cancelled.delivery, removal: .request(xid: xid, opCode: .removeWatches, body: body))
        case .idle, .connecting, .handshaking, .waitingToReconnect, .closing, .finished:
            // No connection holds the server's watch any more (the server drops a connection's watches with it, and
            // the next connection restores only the registry's); closing ends them all.
            return .cancelWatch(cancelled.delivery, removal: nil)
        }
    }

    /// The consumer of a persistent watch stream stopped listening. When it was the last local watch on its node, the
    /// server's watch is removed too, so that nothing is watched, sent or decoded for nobody.
    ///
    /// ZooKeeper 3.8 has no removal type for persistent watches alone; `.any` removes every watch the session holds
    /// on the node, which is right only because no other local watch is registered there (nor being registered by a
    /// request in flight, whose watch the server would set before it handles the removal).
    mutating func streamTerminated(id: Int) -> Action {
        let emptied = self.watches.removeStream(id: id)
        guard case .connected = self.state, let serverPath = emptied.first else {
            // Without a connection the server holds no watch of this session's (the next connection restores only the
            // registry's); closing ends them all.
            return .none
        }
        let registering = self.pending.contains { request in
            guard case .caller(_, let registration?) = request.kind else { return false }
            return registration.sets(on: serverPath)
        }
        guard !registering else { return .none }
        let xid = self.takeXID()
        self.pending.append(PendingRequest(xid: xid, opCode: .removeWatches, path: nil, kind: .removeWatches))
        var body = ByteBuffer()
        body.writeJuteString(serverPath)
        body.writeInteger(ZooKeeperWatcherType.any.rawValue)
        return .write(.request(xid: xid, opCode: .removeWatches, body: body))
    }

    // MARK: Heartbeat and failures

    /// Nothing was written for a while: keep the session alive.
    func pingDue() -> Action {
        switch self.state {
        case .connected:
            return .write(.request(xid: ReservedXID.ping, opCode: .ping, body: ByteBuffer()))
        case .closing, .waitingToReconnect:
            // Closing: the answer to closeSession or its timeout ends the session. Waiting: from the connection
            // just closed.
            return .none
        case .idle, .connecting, .handshaking, .finished:
            // The idle handler is added when a session is established, on that connection only.
            return self.unexpected("pingDue")
        }
    }

    /// Nothing was read within the read timeout: the server is gone or stuck.
    func readTimedOut() -> Action {
        switch self.state {
        case .connected(let server):
            return .closeConnection(
                ZooKeeperError(
                    code: .connectionLoss,
                    message: "\(self.configuration.servers[server]) sent nothing within the read timeout; trying another server"
                )
            )
        case .closing, .waitingToReconnect:
            // Closing: the close timeout ends the session. Waiting: from the connection just closed.
            return .none
        case .idle, .connecting, .handshaking, .finished:
            return self.unexpected("readTimedOut")
        }
    }

    /// The current connection closed (by either side, or after an error). `error` says why, if known.
    mutating func connectionClosed(error: ZooKeeperError?) -> Action {
        switch self.state {
        case .connecting, .handshaking:
            return self.moveToNextServer(cleanup: Cleanup(), event: nil)
        case .connected(let server):
            var cleanup = Cleanup()
            let loss = ZooKeeperError(code: .connectionLoss)
            var first = true
            while let request = self.pending.popFirst() {
                // An oversized reply belongs to the oldest request; the others only lost their connection.
                var requestError = first && error?.code == .frameTooLarge ? error! : loss
                first = false
                guard case .caller(let promise, let watch) = request.kind else { continue }
                requestError.path = request.path
                if requestError.code == .connectionLoss { requestError = ZooKeeperError(code: .connectionLoss, path: request.path) }
                cleanup.requests.append((promise, requestError))
                if let delivery = watch?.fail(requestError) { cleanup.watches.append(delivery) }
            }
            while let auth = self.pendingAuths.popFirst() {
                // The credential stays recorded and is sent again on the next connection.
                if let promise = auth.promise { cleanup.auths.append((promise, loss)) }
            }
            return self.moveToNextServer(cleanup: cleanup, event: .disconnected(server: self.configuration.servers[server]), immediately: true)
        case .closing:
            return self.finish(error: ZooKeeperError(code: .clientClosed), event: .closed)
        case .waitingToReconnect:
            // The connection this machine asked to close (with `.reconnect`) has closed.
            return .none
        case .idle, .finished:
            // No connection of the current id is open: finishing gives later ones a new id.
            return self.unexpected("connectionClosed")
        }
    }

    // MARK: Closing

    /// The owner asks to close. Unless `awaitingAnswer`, the session finishes as soon as the request is written
    /// (`closeSessionWritten`): the server closes the session as it reads it, after the owner has gone on.
    mutating func closeRequested(timeout: TimeAmount, awaitingAnswer: Bool = true) -> Action {
        switch self.state {
        case .connected:
            let xid = self.takeXID()
            self.pending.append(PendingRequest(xid: xid, opCode: .closeSession, path: nil, kind: .closeSession))
            self.state = .closing
            return .sendCloseSession(
                .request(xid: xid, opCode: .closeSession, body: ByteBuffer()), timeout: timeout,
                reportWritten: !awaitingAnswer)
        case .idle, .connecting, .handshaking, .waitingToReconnect:
            return self.finish(error: ZooKeeperError(code: .clientClosed), event: .closed)
        case .closing, .finished:
            // close() may be called again (or after the session ended); the first call's outcome stands.
            return .none
        }
    }

    /// The closeSession request of a close that does not await its answer has been written to the connection.
    mutating func closeSessionWritten() -> Action {
        switch self.state {
        case .closing:
            return self.finish(error: ZooKeeperError(code: .clientClosed), event: .closed)
        case .finished:
            // The answer, the close timer or the connection's end finished the session first.
            return .none
        case .idle, .connecting, .handshaking, .connected, .waitingToReconnect:
            // Only `closing` sends closeSession, and only finishing leaves it.
            return self.unexpected("closeSessionWritten")
        }
    }

    mutating func closeTimedOut() -> Action {
        switch self.state {
        case .closing:
            return self.finish(error: ZooKeeperError(code: .clientClosed), event: .closed)
        case .idle, .connecting, .handshaking, .connected, .waitingToReconnect, .finished:
            // The close timer is set on entering `closing`, which only finishing leaves, and finishing cancels it.
            return self.unexpected("closeTimedOut")
        }
    }

    /// The first session was not established within the connect timeout.
    mutating func connectDeadlineReached(servers: String) -> Action {
        switch self.state {
        case .connecting, .handshaking, .waitingToReconnect:
            // Cancelled once the first session is established: until then these are the states of connecting.
            guard !self.hasEstablished else { return self.unexpected("connectDeadlineReached") }
        case .idle, .connected, .closing, .finished:
            // Cancelled when the first session is established and when the session finishes; set after start.
            return self.unexpected("connectDeadlineReached")
        }
        let error = ZooKeeperError(
            code: .connectTimeout,
            message: "no ZooKeeper server answered within the connect timeout (tried \(servers)); check the connect string and that the servers are running"
        )
        return self.finish(error: error, event: nil)
    }

    // MARK: Internals

    /// The action for an event the current state cannot receive.
    private func unexpected(_ event: String) -> Action {
        .unexpectedEvent(UnexpectedEvent(event: event, state: self.stateName))
    }

    /// The current state's name, for messages.
    var stateName: String {
        switch self.state {
        case .idle: "idle"
        case .connecting(let server): "connecting to \(self.configuration.servers[server])"
        case .handshaking(let server): "handshaking with \(self.configuration.servers[server])"
        case .connected(let server): "connected to \(self.configuration.servers[server])"
        case .waitingToReconnect: "waiting to reconnect"
        case .closing: "closing"
        case .finished(let error): "finished (\(error.code))"
        }
    }

    /// The next xid: positive, wrapping from Int32.max back to 1 so it never hits the reserved negative xids.
    mutating func takeXID() -> Int32 {
        let xid = self.nextXID
        self.nextXID = xid == Int32.max ? 1 : xid + 1
        return xid
    }

    private mutating func advanceServer() -> Int {
        self.lastServer = (self.lastServer + 1) % self.configuration.servers.count
        return self.lastServer
    }

    private mutating func moveToNextServer(cleanup: Cleanup, event: ZooKeeperSessionEvent?, immediately: Bool = false) -> Action {
        if immediately {
            // A working connection broke: try the next server right away.
            self.failedAttempts = 0
        } else {
            self.failedAttempts += 1
        }
        if self.failedAttempts > 0, self.failedAttempts % self.configuration.servers.count == 0 {
            // A whole round failed: back off (50 ms doubling up to 1 s) before the next round.
            self.state = .waitingToReconnect
            let rounds = self.failedAttempts / self.configuration.servers.count
            let delay = TimeAmount.milliseconds(Int64(min(1000, 50 << min(rounds - 1, 5))))
            return .reconnect(cleanup, event: event, next: .wait(delay))
        }
        let server = self.advanceServer()
        self.state = .connecting(server: server)
        return .reconnect(cleanup, event: event, next: .connect(server: server, timeout: self.configuration.attemptTimeout))
    }

    private mutating func finish(error: ZooKeeperError, event: ZooKeeperSessionEvent?) -> Action {
        var cleanup = Cleanup()
        while let request = self.pending.popFirst() {
            guard case .caller(let promise, let watch) = request.kind else { continue }
            var requestError = error
            requestError.path = request.path
            cleanup.requests.append((promise, requestError))
            if let delivery = watch?.fail(requestError) { cleanup.watches.append(delivery) }
        }
        while let request = self.queued.popFirst() {
            var requestError = error
            requestError.path = request.path
            cleanup.requests.append((request.reply, requestError))
            if let delivery = request.watch?.fail(requestError) { cleanup.watches.append(delivery) }
        }
        while let auth = self.pendingAuths.popFirst() {
            if let promise = auth.promise { cleanup.auths.append((promise, error)) }
        }
        for (_, promise) in self.queuedAuths { cleanup.auths.append((promise, error)) }
        self.queuedAuths = []
        cleanup.watches += self.watches.removeAll(failingWith: error)
        self.state = .finished(error)
        return .finish(cleanup, event: event, error: error)
    }

    static func authMessage(_ credential: ZooKeeperCredential) -> ZooKeeperClientMessage {
        var body = ByteBuffer()
        body.writeInteger(Int32(0))
        body.writeJuteString(credential.scheme)
        body.writeJuteBuffer(credential.auth)
        return .request(xid: ReservedXID.auth, opCode: .auth, body: body)
    }
}
