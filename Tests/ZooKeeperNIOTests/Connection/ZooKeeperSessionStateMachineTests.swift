import NIOCore
import NIOEmbedded
import Testing

@testable import ZooKeeperNIO

@Suite("Session state machine")
struct ZooKeeperSessionStateMachineTests {
    let loop = EmbeddedEventLoop()

    static func configuration(servers: Int = 3, credentials: [ZooKeeperCredential] = []) -> ZooKeeperSessionStateMachine.Configuration {
        .init(
            servers: (0..<servers).map { "h\($0):2181" }, sessionTimeoutMilliseconds: 6000, maxFrameSize: 1000, chroot: "",
            credentials: credentials, firstServer: 0, attemptTimeout: .seconds(2)
        )
    }

    static let response = ConnectResponse(protocolVersion: 0, timeout: 6000, sessionID: 77, password: Array(repeating: 9, count: 16), readOnly: false)

    /// Drives a machine to an established session on server 0.
    func connected(_ configuration: ZooKeeperSessionStateMachine.Configuration = configuration(), firstXID: Int32 = 1) -> ZooKeeperSessionStateMachine {
        var machine = ZooKeeperSessionStateMachine(configuration: configuration, firstXID: firstXID)
        _ = machine.start()
        _ = machine.connectionEstablished()
        _ = machine.connectResponseReceived(Self.response, serverName: "h0:2181")
        return machine
    }

    @Test func handshakeEstablishesANewSession() {
        var machine = ZooKeeperSessionStateMachine(configuration: Self.configuration(credentials: [.digest(user: "u", password: "p")]))
        guard case .connect(server: 0, timeout: .seconds(2)) = machine.start() else { Issue.record("expected a connect"); return }
        guard case .sendConnectRequest(let request) = machine.connectionEstablished() else { Issue.record("expected a handshake"); return }
        #expect(request == .newSession(timeoutMilliseconds: 6000))
        guard case .established(let established) = machine.connectResponseReceived(Self.response, serverName: "h0:2181") else {
            Issue.record("expected an established session")
            return
        }
        #expect(established.event == .connected(sessionID: 77, server: "h0:2181", negotiatedTimeout: .seconds(6)))
        #expect(established.readTimeout == .seconds(4))
        #expect(established.pingInterval == .seconds(2))
        // Credentials go out first, as auth packets.
        #expect(established.messages == [ZooKeeperSessionStateMachine.authMessage(.digest(user: "u", password: "p"))])
        #expect(machine.isConnected)
    }

    @Test func pipelinedRepliesMustComeInOrder() {
        var machine = self.connected()
        let first = self.loop.makePromise(of: ByteBuffer.self)
        let second = self.loop.makePromise(of: ByteBuffer.self)
        guard case .write(.request(xid: 1, opCode: .getData, _)) = machine.sendRequest(opCode: .getData, path: "/a", body: ByteBuffer(), promise: first, watch: nil),
            case .write(.request(xid: 2, opCode: .getData, _)) = machine.sendRequest(opCode: .getData, path: "/b", body: ByteBuffer(), promise: second, watch: nil)
        else {
            Issue.record("expected two writes")
            return
        }
        guard case .succeedRequest(.promise(let promise), _, _) = machine.replyReceived(xid: 1, zxid: 5, error: 0, body: ByteBuffer()) else {
            Issue.record("expected the first request to succeed")
            return
        }
        #expect(promise.futureResult === first.futureResult)
        first.succeed(ByteBuffer())
        #expect(machine.lastZxidSeen == 5)
        // A reply for an xid that is not the oldest pending one breaks the protocol.
        guard case .closeConnection(let error) = machine.replyReceived(xid: 9, zxid: 6, error: 0, body: ByteBuffer()) else {
            Issue.record("expected the connection to close")
            return
        }
        #expect(error.code == .protocolError)
        // Closing fails what was in flight with connectionLoss and reconnects to the next server at once.
        guard case .reconnect(let cleanup, let event, .connect(server: 1, _)) = machine.connectionClosed(error: error) else {
            Issue.record("expected a reconnect")
            return
        }
        #expect(event == .disconnected(server: "h0:2181"))
        #expect(cleanup.requests.count == 1)
        #expect(cleanup.requests.first?.1.code == .connectionLoss)
        #expect(cleanup.requests.first?.1.path == "/b")
        second.fail(ZooKeeperError(code: .connectionLoss))
    }

    @Test func serverErrorsCarryThePath() {
        var machine = self.connected()
        let promise = self.loop.makePromise(of: ByteBuffer.self)
        _ = machine.sendRequest(opCode: .delete, path: "/x", body: ByteBuffer(), promise: promise, watch: nil)
        guard case .failRequest(_, let error, _) = machine.replyReceived(xid: 1, zxid: 5, error: -111, body: ByteBuffer()) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error == ZooKeeperError(code: .notEmpty, path: "/x"))
        #expect(error.message == "NOTEMPTY on /x: the node has children; delete them first")
        promise.fail(error)
    }

    @Test func xidsWrapWithoutReservedValues() {
        var machine = self.connected(firstXID: Int32.max - 1)
        #expect(machine.takeXID() == Int32.max - 1)
        #expect(machine.takeXID() == Int32.max)
        #expect(machine.takeXID() == 1)
        #expect(machine.takeXID() == 2)
    }

    @Test func oversizedRequestsAreRefusedUnsent() {
        var machine = self.connected()
        let promise = self.loop.makePromise(of: ByteBuffer.self)
        guard case .failRequest(_, let error, _) = machine.sendRequest(
            opCode: .setData, path: "/big", body: ByteBuffer(bytes: [UInt8](repeating: 0, count: 993)), promise: promise, watch: nil
        ) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(error.code == .frameTooLarge)
        #expect(machine.pending.isEmpty)
        promise.fail(error)
    }

    @Test func reconnectResendsAuthThenWatchesThenQueuedRequests() throws {
        var machine = self.connected()
        // A watch set on the first connection.
        let watchPromise = self.loop.makePromise(of: ZooKeeperWatchEvent.self)
        let getData = self.loop.makePromise(of: ByteBuffer.self)
        _ = machine.sendRequest(opCode: .getData, path: "/w", body: ByteBuffer(), promise: getData, watch: .data(serverPath: "/w", watchPromise))
        _ = machine.replyReceived(xid: 1, zxid: 40, error: 0, body: ByteBuffer())
        getData.succeed(ByteBuffer())
        _ = machine.connectionClosed(error: nil)

        // While disconnected, auth and requests wait.
        let auth = self.loop.makePromise(of: Void.self)
        guard case .none = machine.addAuth(.digest(user: "a", password: "b"), promise: auth) else { Issue.record("auth must wait"); return }
        let queued = self.loop.makePromise(of: ByteBuffer.self)
        guard case .none = machine.sendRequest(opCode: .exists, path: "/q", body: ByteBuffer(), promise: queued, watch: nil) else {
            Issue.record("the request must wait")
            return
        }
        guard case .sendConnectRequest(let request) = machine.connectionEstablished() else { Issue.record("expected a handshake"); return }
        #expect(request.sessionID == 77)
        #expect(request.lastZxidSeen == 40)
        #expect(request.password == Self.response.password)
        guard case .established(let established) = machine.connectResponseReceived(Self.response, serverName: "h1:2181") else {
            Issue.record("expected the session to resume")
            return
        }
        #expect(established.event == .reconnected(sessionID: 77, server: "h1:2181"))
        #expect(established.messages.count == 3)
        #expect(established.messages[0] == ZooKeeperSessionStateMachine.authMessage(.digest(user: "a", password: "b")))
        guard case .request(xid: ReservedXID.setWatches, opCode: .setWatches, var body) = established.messages[1] else {
            Issue.record("expected SetWatches")
            return
        }
        #expect(body.readInteger(as: Int64.self) == 40)
        #expect(try body.readJuteStringVector() == ["/w"])
        guard case .request(xid: 2, opCode: .exists, _) = established.messages[2] else { Issue.record("expected the queued request"); return }

        // The event fires the restored watch exactly once.
        guard case .deliverWatchEvents(let deliveries) = machine.watchEventReceived(WatcherEvent(type: 3, state: 3, path: "/w")) else {
            Issue.record("expected a delivery")
            return
        }
        #expect(deliveries.count == 1)
        for delivery in deliveries { delivery.deliver() }
        guard case .none = machine.watchEventReceived(WatcherEvent(type: 3, state: 3, path: "/w")) else {
            Issue.record("a one-shot watch fires once")
            return
        }
        _ = machine.authReplyReceived(error: 0)
        auth.succeed()
        queued.succeed(ByteBuffer())
    }

    @Test func expiryOnReconnectFinishesEverything() throws {
        var machine = self.connected()
        let watchPromise = self.loop.makePromise(of: ZooKeeperWatchEvent.self)
        let exists = self.loop.makePromise(of: ByteBuffer.self)
        _ = machine.sendRequest(opCode: .exists, path: "/e", body: ByteBuffer(), promise: exists, watch: .exists(serverPath: "/e", watchPromise))
        // exists on a missing node still sets a watch.
        guard case .failRequest(_, let noNode, _) = machine.replyReceived(xid: 1, zxid: 3, error: -101, body: ByteBuffer()) else {
            Issue.record("expected NONODE")
            return
        }
        exists.fail(noNode)
        #expect(machine.watches.exist["/e"]?.count == 1)
        _ = machine.connectionClosed(error: nil)
        _ = machine.connectionEstablished()
        let expired = ConnectResponse(protocolVersion: 0, timeout: 0, sessionID: 0, password: [], readOnly: false)
        guard case .finish(let cleanup, let event, let error) = machine.connectResponseReceived(expired, serverName: "h1:2181") else {
            Issue.record("expected the session to end")
            return
        }
        #expect(event == .expired(sessionID: 77))
        #expect(error.code == .sessionExpired)
        #expect(cleanup.watches.count == 1)
        for delivery in cleanup.watches { delivery.deliver() }
        #expect(throws: ZooKeeperError.self) { try watchPromise.futureResult.wait() }
        // Nothing silently starts a new session.
        let later = self.loop.makePromise(of: ByteBuffer.self)
        guard case .failRequest(_, let refusal, _) = machine.sendRequest(opCode: .getData, path: "/x", body: ByteBuffer(), promise: later, watch: nil) else {
            Issue.record("an expired session refuses requests")
            return
        }
        #expect(refusal.code == .sessionExpired)
        later.fail(refusal)
        // Nothing reconnects either: a finished session's connection has an id the controller no longer answers to.
        guard case .unexpectedEvent = machine.connectionClosed(error: nil) else { Issue.record("no reconnect after expiry"); return }
    }

    /// An event the state cannot receive is a bug: the machine says so (the controller stops a debug build and logs
    /// the event in release) rather than ignoring it.
    @Test func eventsAStateCannotReceiveAreReportedNotIgnored() {
        typealias Unexpected = ZooKeeperSessionStateMachine.UnexpectedEvent
        func expectUnexpected(
            _ action: ZooKeeperSessionStateMachine.Action, _ expected: Unexpected, sourceLocation: SourceLocation = #_sourceLocation
        ) {
            guard case .unexpectedEvent(let unexpected) = action else {
                Issue.record("\(expected.event) while \(expected.state) gave \(action)", sourceLocation: sourceLocation)
                return
            }
            #expect(unexpected == expected, sourceLocation: sourceLocation)
        }
        var idle = ZooKeeperSessionStateMachine(configuration: Self.configuration())
        expectUnexpected(idle.reconnectTimerFired(), Unexpected(event: "reconnectTimerFired", state: "idle"))
        expectUnexpected(idle.connectionEstablished(), Unexpected(event: "connectionEstablished", state: "idle"))
        expectUnexpected(idle.connectionClosed(error: nil), Unexpected(event: "connectionClosed", state: "idle"))
        expectUnexpected(idle.replyReceived(xid: 1, zxid: 1, error: 0, body: ByteBuffer()), Unexpected(event: "replyReceived", state: "idle"))
        #expect(idle.stateName == "idle", "an unexpected event changes nothing")

        var connected = self.connected()
        let state = "connected to h0:2181"
        expectUnexpected(connected.start(), Unexpected(event: "start", state: state))
        expectUnexpected(connected.connectionEstablished(), Unexpected(event: "connectionEstablished", state: state))
        expectUnexpected(connected.connectionFailed(), Unexpected(event: "connectionFailed", state: state))
        expectUnexpected(connected.attemptTimedOut(), Unexpected(event: "attemptTimedOut", state: state))
        expectUnexpected(connected.reconnectTimerFired(), Unexpected(event: "reconnectTimerFired", state: state))
        expectUnexpected(connected.closeTimedOut(), Unexpected(event: "closeTimedOut", state: state))
        expectUnexpected(connected.connectDeadlineReached(servers: "h0:2181"), Unexpected(event: "connectDeadlineReached", state: state))
        #expect(connected.isConnected)

        var handshaking = ZooKeeperSessionStateMachine(configuration: Self.configuration())
        _ = handshaking.start()
        _ = handshaking.connectionEstablished()
        expectUnexpected(handshaking.pingDue(), Unexpected(event: "pingDue", state: "handshaking with h0:2181"))
        expectUnexpected(handshaking.readTimedOut(), Unexpected(event: "readTimedOut", state: "handshaking with h0:2181"))
    }

    /// What the connection just closed still delivers is ignored, deliberately: the next connection restores it.
    @Test func lateEventsOfAClosedConnectionAreIgnored() {
        var machine = self.connected(Self.configuration(servers: 1))
        guard case .reconnect(_, .disconnected, .connect(server: 0, _)) = machine.connectionClosed(error: nil),
            case .reconnect(_, nil, .wait) = machine.connectionFailed()
        else {
            Issue.record("expected to wait before reconnecting")
            return
        }
        #expect(machine.stateName == "waiting to reconnect")
        guard case .none = machine.replyReceived(xid: 9, zxid: 9, error: 0, body: ByteBuffer()),
            case .none = machine.authReplyReceived(error: 0),
            case .none = machine.watchEventReceived(WatcherEvent(type: 3, state: 3, path: "/a")),
            case .none = machine.pingDue(),
            case .none = machine.readTimedOut(),
            case .none = machine.connectionClosed(error: nil)
        else {
            Issue.record("a late event of the closed connection was acted on")
            return
        }
        #expect(machine.stateName == "waiting to reconnect")
    }

    @Test func failedRoundsBackOff() {
        var machine = ZooKeeperSessionStateMachine(configuration: Self.configuration(servers: 2))
        _ = machine.start()
        guard case .reconnect(_, nil, .connect(server: 1, _)) = machine.connectionFailed() else { Issue.record("try the next server"); return }
        guard case .reconnect(_, nil, .wait(let delay)) = machine.connectionFailed() else { Issue.record("back off after a round"); return }
        #expect(delay == .milliseconds(50))
        guard case .connect(server: 0, _) = machine.reconnectTimerFired() else { Issue.record("then try again"); return }
        _ = machine.connectionFailed()
        guard case .reconnect(_, nil, .wait(let second)) = machine.connectionFailed() else { Issue.record("back off again"); return }
        #expect(second == .milliseconds(100))
        guard case .finish(_, nil, let error) = machine.connectDeadlineReached(servers: "h0:2181,h1:2181") else {
            Issue.record("the deadline ends the attempt")
            return
        }
        #expect(error.code == .connectTimeout)
        #expect(error.message.contains("h0:2181,h1:2181"))
        // The backoff's timer fired as the deadline ended the session (too late to be cancelled): nothing happens.
        guard case .none = machine.reconnectTimerFired() else { Issue.record("a late timer of an ended session was acted on"); return }
    }

    @Test func idleConnectionsPingAndSilentOnesClose() {
        let machine = self.connected()
        guard case .write(.request(xid: ReservedXID.ping, opCode: .ping, _)) = machine.pingDue() else { Issue.record("expected a ping"); return }
        guard case .closeConnection(let error) = machine.readTimedOut() else { Issue.record("expected a close"); return }
        #expect(error.code == .connectionLoss)
        #expect(error.message.contains("h0:2181"))
    }

    @Test func closeSendsCloseSessionAndFinishes() {
        var machine = self.connected()
        guard case .sendCloseSession(.request(xid: 1, opCode: .closeSession, _), _, _) = machine.closeRequested(timeout: .seconds(2)) else {
            Issue.record("expected closeSession")
            return
        }
        guard case .finish(_, .closed, let error) = machine.replyReceived(xid: 1, zxid: 9, error: 0, body: ByteBuffer()) else {
            Issue.record("expected the session to finish")
            return
        }
        #expect(error.code == .clientClosed)
        #expect(machine.isFinished)
    }

    @Test func aCloseWithoutAnswerFinishesOnceTheRequestIsWritten() {
        var machine = self.connected()
        guard case .sendCloseSession(.request(xid: 1, opCode: .closeSession, _), _, reportWritten: true) =
            machine.closeRequested(timeout: .seconds(2), awaitingAnswer: false)
        else {
            Issue.record("expected closeSession, reported once written")
            return
        }
        #expect(!machine.isFinished)
        guard case .finish(_, .closed, let error) = machine.closeSessionWritten() else {
            Issue.record("expected the session to finish")
            return
        }
        #expect(error.code == .clientClosed)
        #expect(machine.isFinished)
        // The written report of a session the answer already finished changes nothing.
        var answered = self.connected()
        _ = answered.closeRequested(timeout: .seconds(2), awaitingAnswer: false)
        _ = answered.replyReceived(xid: 1, zxid: 9, error: 0, body: ByteBuffer())
        guard case .none = answered.closeSessionWritten() else { Issue.record("a finished session acted on a late report"); return }
        // A close that awaits the answer is not reported as written.
        var awaiting = self.connected()
        guard case .sendCloseSession(_, _, reportWritten: false) = awaiting.closeRequested(timeout: .seconds(2)) else {
            Issue.record("expected closeSession awaiting its answer")
            return
        }
    }

    @Test func authFailureEndsTheSession() {
        var machine = self.connected()
        let auth = self.loop.makePromise(of: Void.self)
        _ = machine.addAuth(ZooKeeperCredential(scheme: "bad", auth: []), promise: auth)
        guard case .finish(let cleanup, .authFailed(scheme: "bad"), let error) = machine.authReplyReceived(error: -115) else {
            Issue.record("expected the session to end")
            return
        }
        #expect(error.code == .authFailed)
        #expect(cleanup.auths.count == 1)
        auth.fail(error)
    }

    @Test func setWatchesIsSplitIntoBatches() {
        var registry = ZooKeeperWatchRegistry()
        for index in 0..<3000 {
            registry.add(.child(serverPath: "/" + String(repeating: "x", count: 90) + "\(index)", self.loop.makePromise()), nodeExists: true)
        }
        let requests = registry.setWatchesRequests(relativeZxid: 1)
        #expect(requests.count == 3)
        for case .request(_, _, let body) in requests {
            #expect(body.readableBytes <= 128 * 1024 + 64)
        }
        for delivery in registry.removeAll(failingWith: ZooKeeperError(code: .clientClosed)) { delivery.deliver() }
    }

    @Test func recursiveWatchesMatchDescendantsButNotChildEvents() {
        var registry = ZooKeeperWatchRegistry()
        let (stream, continuation) = ZooKeeperWatchStream.makeStream()
        registry.add(.persistent(serverPath: "/a", .persistentRecursive, id: 1, ZooKeeperWatchSink(continuation)), nodeExists: true)
        let event = ZooKeeperWatchEvent(type: .nodeCreated, path: "/a/b/c")
        #expect(registry.trigger(type: .nodeCreated, serverPath: "/a/b/c", event: event).count == 1)
        #expect(registry.trigger(type: .nodeCreated, serverPath: "/ab", event: event).isEmpty)
        #expect(registry.trigger(type: .nodeChildrenChanged, serverPath: "/a", event: event).isEmpty)
        continuation.finish()
        _ = stream
    }
}
