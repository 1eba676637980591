import NIOCore

/// The per-connection handler: passes decoded server messages, connection state and idle events to the
/// session controller, tagged with the connection they belong to.
final class ZooKeeperChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ZooKeeperServerMessage

    private let controller: ZooKeeperSessionController
    private let connectionID: Int
    private var error: ZooKeeperError?

    init(controller: ZooKeeperSessionController, connectionID: Int) {
        self.controller = controller
        self.connectionID = connectionID
    }

    func channelActive(context: ChannelHandlerContext) {
        self.controller.connectionActive(self.connectionID, channel: context.channel)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.controller.messageReceived(self.unwrapInboundIn(data), connectionID: self.connectionID)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.controller.connectionClosed(self.connectionID, error: self.error)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil {
            self.error = error as? ZooKeeperError ?? ZooKeeperError(code: .connectionLoss, message: "connection error: \(error)")
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent {
            switch idle {
            case .write: self.controller.pingDue(self.connectionID)
            case .read: self.controller.readTimedOut(self.connectionID)
            case .all: break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
