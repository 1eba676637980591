import NIOCore
import NIOPosix

/// Opens connections to ensemble members: TCP in production, embedded channels in tests.
protocol ZooKeeperConnector: Sendable {
    /// Opens a connection whose pipeline ends in `handler`; the handler sees `channelActive` once connected.
    func connect(
        to server: ZooKeeperConfiguration.Server, on eventLoop: any EventLoop, timeout: TimeAmount, maxFrameSize: Int,
        handler: @escaping @Sendable () -> ZooKeeperChannelHandler
    ) -> EventLoopFuture<any Channel>
}

/// Connects over TCP with NIO's ClientBootstrap.
struct ZooKeeperTCPConnector: ZooKeeperConnector {
    func connect(
        to server: ZooKeeperConfiguration.Server, on eventLoop: any EventLoop, timeout: TimeAmount, maxFrameSize: Int,
        handler: @escaping @Sendable () -> ZooKeeperChannelHandler
    ) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try ZooKeeperChannelPipeline.configure(channel.pipeline.syncOperations, maxFrameSize: maxFrameSize, handler: handler())
                }
            }
            .connect(host: server.host, port: server.port)
    }
}

/// The handlers of a client connection.
enum ZooKeeperChannelPipeline {
    static func configure(_ pipeline: ChannelPipeline.SynchronousOperations, maxFrameSize: Int, handler: ZooKeeperChannelHandler) throws {
        try pipeline.addHandler(ByteToMessageHandler(ZooKeeperMessageDecoder(maxFrameSize: maxFrameSize)))
        try pipeline.addHandler(MessageToByteHandler(ZooKeeperMessageEncoder(maxFrameSize: maxFrameSize)))
        try pipeline.addHandler(handler)
    }
}
