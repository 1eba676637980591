import NIOCore

/// Tells a long response (an event stream) that its connection went away: the peer closed its side, or the
/// connection closed. The HTTP server keeps reading a connection while a response is written, so the end of input is
/// seen at once, and the stream (and with the last one, the store watch) ends without waiting for a write to fail.
final class ConnectionClosing: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private let onClose: @Sendable () -> Void

    init(onClose: @escaping @Sendable () -> Void) {
        self.onClose = onClose
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent { onClose() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }

    /// Calls `onClose` once `channel`'s peer has closed its side or the channel has closed.
    static func watch(_ channel: any Channel, onClose: @escaping @Sendable () -> Void) {
        channel.closeFuture.whenComplete { _ in onClose() }
        channel.pipeline.addHandler(ConnectionClosing(onClose: onClose), position: .first).whenFailure { _ in onClose() }
    }
}
