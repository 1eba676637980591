import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy in front of a server, for simulating network failures a client must survive.
///
/// In `.forwarding` mode bytes pass both ways. `.blackhole` keeps connections open but drops every byte, the way
/// a partition or a frozen peer looks to a client. `.refusing` closes every connection at once.
public final class ZooKeeperTestProxy: Sendable {
    /// What the proxy does with traffic.
    public enum Mode: Sendable {
        case forwarding
        case blackhole
        case refusing
    }

    /// The port clients connect to.
    public let port: Int
    /// `127.0.0.1:port`.
    public var connectString: String { "127.0.0.1:\(self.port)" }
    private let listener: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var mode: Mode = .forwarding
        var connections: [ObjectIdentifier: any Channel] = [:]
        var bytesFromClients = 0
    }

    /// Starts a proxy on a free loopback port that forwards to `host:port`.
    public static func start(forwardingTo host: String, port targetPort: Int) async throws -> ZooKeeperTestProxy {
        let state = NIOLockedValueBox(State())
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                if state.withLockedValue({ $0.mode }) == .refusing {
                    return inbound.close()
                }
                return inbound.setOption(.autoRead, value: false).flatMap {
                    ClientBootstrap(group: inbound.eventLoop).connect(host: host, port: targetPort)
                }.flatMap { outbound in
                    state.withLockedValue { state in
                        state.connections[ObjectIdentifier(inbound)] = inbound
                        state.connections[ObjectIdentifier(outbound)] = outbound
                    }
                    return inbound.eventLoop.makeCompletedFuture {
                        try inbound.pipeline.syncOperations.addHandler(
                            GlueHandler(peer: outbound, state: state, fromClient: true))
                    }.flatMap {
                        outbound.pipeline.addHandler(GlueHandler(peer: inbound, state: state, fromClient: false))
                    }.flatMap {
                        inbound.setOption(.autoRead, value: true)
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ZooKeeperTestProxy(listener: listener, state: state)
    }

    private init(listener: any Channel, state: NIOLockedValueBox<State>) {
        self.listener = listener
        self.port = listener.localAddress!.port!
        self.state = state
    }

    /// Changes what the proxy does; `.refusing` also closes every open connection.
    public func setMode(_ mode: Mode) {
        let toClose: [any Channel] = self.state.withLockedValue { state in
            state.mode = mode
            guard mode == .refusing else { return [] }
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for channel in toClose { channel.close(promise: nil) }
    }

    /// How many bytes clients have sent through the proxy so far: what they asked of the server.
    public var bytesFromClients: Int { self.state.withLockedValue { $0.bytesFromClients } }

    /// Closes the listener and every connection.
    public func stop() async {
        self.setMode(.refusing)
        try? await self.listener.close()
    }

    private final class GlueHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let peer: any Channel
        let state: NIOLockedValueBox<State>
        let fromClient: Bool

        init(peer: any Channel, state: NIOLockedValueBox<State>, fromClient: Bool) {
            self.peer = peer
            self.state = state
            self.fromClient = fromClient
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            let forwarding = self.state.withLockedValue { state in
                guard state.mode == .forwarding else { return false }
                if self.fromClient { state.bytesFromClients += buffer.readableBytes }
                return true
            }
            guard forwarding else { return }
            self.peer.writeAndFlush(buffer, promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            _ = self.state.withLockedValue { $0.connections.removeValue(forKey: ObjectIdentifier(context.channel)) }
            self.peer.close(promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
