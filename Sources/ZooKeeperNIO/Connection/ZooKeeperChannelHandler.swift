import NIOCore

/// The per-connection handler: splits the server's bytes into messages and passes them, the connection's state
/// and idle events to the session controller, tagged with the connection they belong to.
///
/// It decodes frames itself (with `ZooKeeperMessageDecoder`) and hands each message straight to the controller,
/// so a reply costs no message boxed in the pipeline.
///
/// While many requests are in flight (`ZooKeeperSessionController.readDelay`), it asks for the next read a
/// little later (at most 1 ms) instead of at once: the replies that arrive meanwhile are read, and their
/// callers resumed, in one go, rather than one wake-up of the client's threads per reply. The server has plenty
/// of requests queued then, so this costs no throughput; with few requests in flight every read is immediate.
/// Requests submitted meanwhile from other threads are sent with that read, not each with a wake-up of the loop.
final class ZooKeeperChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let controller: ZooKeeperSessionController
    private let connectionID: Int
    private var decoder: ZooKeeperMessageDecoder
    /// Bytes received but not yet decoded (a partial frame).
    private var received: ByteBuffer?
    private var error: ZooKeeperError?
    private var closed = false
    private var delayedRead: Scheduled<Void>?

    init(controller: ZooKeeperSessionController, connectionID: Int, maxFrameSize: Int) {
        self.controller = controller
        self.connectionID = connectionID
        self.decoder = ZooKeeperMessageDecoder(maxFrameSize: maxFrameSize)
    }

    func channelActive(context: ChannelHandlerContext) {
        self.controller.connectionActive(self.connectionID, channel: context.channel)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closed else { return }
        var bytes = self.unwrapInboundIn(data)
        if var partial = self.received, partial.readableBytes > 0 {
            self.received = nil  // so the append below does not copy a shared buffer
            partial.writeBuffer(&bytes)
            bytes = partial
        }
        do {
            while !self.closed, let message = try self.decoder.decode(buffer: &bytes) {
                self.controller.messageReceived(message, connectionID: self.connectionID)
            }
        } catch {
            // A malformed or oversized frame: nothing after it can be read.
            self.received = nil
            self.errorCaught(context: context, error: error)
            self.closed = true
            return
        }
        self.received = bytes.readableBytes > 0 ? bytes : nil
    }

    func read(context: ChannelHandlerContext) {
        guard self.delayedRead == nil else { return }
        guard !self.closed, let delay = self.controller.readDelay(self.connectionID) else {
            context.read()
            return
        }
        // Requests issued meanwhile are sent together when the read is made.
        self.controller.holdSubmissions()
        self.delayedRead = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.delayedRead = nil
            self.controller.drainSubmissions()
            if !self.closed { context.read() }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.received = nil
        let delayedRead = self.delayedRead
        self.delayedRead = nil
        delayedRead?.cancel()
        self.controller.connectionClosed(self.connectionID, error: self.error)
        if delayedRead != nil {
            // The held submissions wait for no read now; they go to the session as it is after the close.
            self.controller.drainSubmissions()
        }
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
