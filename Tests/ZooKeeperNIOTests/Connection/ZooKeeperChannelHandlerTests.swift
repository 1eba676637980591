import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import ZooKeeperNIO

/// Hands out embedded channels, so the session controller and its channel handler run without sockets.
final class EmbeddedConnector: ZooKeeperConnector, @unchecked Sendable {
    var channels: [EmbeddedChannel] = []

    func connect(
        to server: ZooKeeperConfiguration.Server, on eventLoop: any EventLoop, timeout: TimeAmount, maxFrameSize: Int,
        handler: @escaping @Sendable () -> ZooKeeperChannelHandler
    ) -> EventLoopFuture<any Channel> {
        let channel = EmbeddedChannel(loop: eventLoop as! EmbeddedEventLoop)
        self.channels.append(channel)
        do {
            try ZooKeeperChannelPipeline.configure(channel.pipeline.syncOperations, maxFrameSize: maxFrameSize, handler: handler())
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: server.port)).wait()
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return eventLoop.makeSucceededFuture(channel)
    }
}

@Suite("Session controller and channel handler on embedded channels")
struct ZooKeeperChannelHandlerTests {
    let loop = EmbeddedEventLoop()
    let connector = EmbeddedConnector()

    func makeController(maxBufferSize: Int = ZooKeeperConfiguration.defaultMaxBufferSize) throws -> ZooKeeperSessionController {
        var configuration = try ZooKeeperConfiguration(connectString: "a:1,b:2", sessionTimeout: .seconds(6))
        configuration.maxBufferSize = maxBufferSize
        return ZooKeeperSessionController(eventLoop: self.loop, configuration: configuration, connector: self.connector, firstServer: 0)
    }

    /// Connects and answers the handshake; returns the channel.
    func establish(_ controller: ZooKeeperSessionController) throws -> EmbeddedChannel {
        let started = self.loop.makePromise(of: Void.self)
        controller.start(promise: started)
        let channel = try #require(self.connector.channels.last)
        self.loop.run()
        var handshake = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(handshake.readInteger(as: Int32.self) == 45)
        #expect(handshake.readInteger(as: Int32.self) == 0)
        try channel.writeInbound(ZooKeeperCodecTests.frame { $0.writeConnectResponse(ZooKeeperCodecTests.connectResponse) })
        try started.futureResult.wait()
        #expect(controller.shared.withLockedValue { $0.sessionID } == 0x1234)
        return channel
    }

    @Test func requestsRepliesAndEventsInOrder() throws {
        let controller = try self.makeController()
        let channel = try self.establish(controller)

        let reply = self.loop.makePromise(of: ByteBuffer.self)
        let watch = self.loop.makePromise(of: ZooKeeperWatchEvent.self)
        var body = ByteBuffer()
        body.writePathWatch("/n", watch: true)
        controller.send(opCode: .getData, path: "/n", body: body, promise: reply, watch: .data(serverPath: "/n", watch))
        let second = self.loop.makePromise(of: ByteBuffer.self)
        controller.send(opCode: .getData, path: "/n", body: body, promise: second, watch: nil)
        self.loop.run()
        // Both requests went out in one flush, with consecutive xids.
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(written.readInteger(as: Int32.self) == Int32(8 + body.readableBytes))
        #expect(written.readInteger(as: Int32.self) == 1)
        #expect(written.readInteger(as: Int32.self) == ZooKeeperOpCode.getData.rawValue)

        // First reply sets the watch; then an event and the second reply arrive together.
        var stat = ByteBuffer()
        stat.writeJuteBuffer([1])
        stat.writeZooKeeperStat(ZooKeeperStat(version: 1))
        try channel.writeInbound(ZooKeeperCodecTests.replyFrame(xid: 1, zxid: 10, error: 0, body: stat))
        #expect(try reply.futureResult.wait().readableBytes == stat.readableBytes)

        let order = NIOLockedValueBox<[String]>([])
        watch.futureResult.whenSuccess { _ in order.withLockedValue { $0.append("event") } }
        second.futureResult.whenSuccess { _ in order.withLockedValue { $0.append("reply") } }
        var event = ByteBuffer()
        event.writeInteger(Int32(3))
        event.writeInteger(Int32(3))
        event.writeJuteString("/n")
        var together = ZooKeeperCodecTests.replyFrame(xid: -1, zxid: -1, error: 0, body: event)
        var secondReply = ZooKeeperCodecTests.replyFrame(xid: 2, zxid: 11, error: 0, body: stat)
        together.writeBuffer(&secondReply)
        try channel.writeInbound(together)
        #expect(order.withLockedValue { $0 } == ["event", "reply"])
        #expect(try watch.futureResult.wait() == ZooKeeperWatchEvent(type: .nodeDataChanged, path: "/n"))

        let closed = self.loop.makePromise(of: Void.self)
        controller.close(promise: closed)
        self.loop.run()
        try channel.writeInbound(ZooKeeperCodecTests.replyFrame(xid: 3, zxid: 12, error: 0))
        try closed.futureResult.wait()
    }

    @Test func idleWritesPingAndSilentReadsReconnect() async throws {
        let controller = try self.makeController()
        let channel = try self.establish(controller)
        let events = controller.subscribe()

        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
        self.loop.run()
        var ping = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(ping.readInteger(as: Int32.self) == 8)
        #expect(ping.readInteger(as: Int32.self) == ReservedXID.ping)

        // A read timeout closes the connection and the client moves to the next server with the same session.
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        self.loop.run()
        #expect(!channel.isActive)
        #expect(self.connector.channels.count == 2)
        let next = self.connector.channels[1]
        self.loop.run()
        var handshake = try #require(try next.readOutbound(as: ByteBuffer.self))
        handshake.moveReaderIndex(forwardBy: 4 + 4 + 8 + 4)
        #expect(handshake.readInteger(as: Int64.self) == 0x1234)
        try next.writeInbound(ZooKeeperCodecTests.frame { $0.writeConnectResponse(ZooKeeperCodecTests.connectResponse) })

        let closed = self.loop.makePromise(of: Void.self)
        controller.close(promise: closed)
        self.loop.run()
        try next.writeInbound(ZooKeeperCodecTests.replyFrame(xid: 1, zxid: 12, error: 0))
        try await closed.futureResult.get()
        // The stream ends after the terminal event, so this loop does not wait on anything.
        var received: [ZooKeeperSessionEvent] = []
        for await event in events { received.append(event) }
        // A new subscriber first learns the current state.
        #expect(
            received == [
                .connected(sessionID: 0x1234, server: "a:1", negotiatedTimeout: .seconds(4)), .disconnected(server: "a:1"),
                .reconnected(sessionID: 0x1234, server: "b:2"), .closed,
            ]
        )
    }

    @Test func anOversizedReplyFailsItsRequest() throws {
        let controller = try self.makeController(maxBufferSize: 100)
        let channel = try self.establish(controller)
        let reply = self.loop.makePromise(of: ByteBuffer.self)
        controller.send(opCode: .getData, path: "/big", body: ByteBuffer(), promise: reply, watch: nil)
        self.loop.run()
        _ = try channel.readOutbound(as: ByteBuffer.self)
        var frame = ByteBuffer()
        frame.writeInteger(Int32(5000))
        // The handler turns the decoder's error into a close; the oldest request gets the error.
        try channel.writeInbound(frame)
        self.loop.run()
        #expect(!channel.isActive)
        do {
            _ = try reply.futureResult.wait()
            Issue.record("the request must fail")
        } catch let error as ZooKeeperError {
            #expect(error.code == .frameTooLarge)
            #expect(error.path == "/big")
            #expect(error.message.contains("5000-byte frame"))
        }
        let closed = self.loop.makePromise(of: Void.self)
        controller.close(promise: closed)
        self.loop.run()
        try closed.futureResult.wait()
    }
}
