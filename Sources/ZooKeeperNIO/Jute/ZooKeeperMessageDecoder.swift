import NIOCore

/// Splits the server's byte stream into frames (4-byte length + payload) and decodes each frame's header.
///
/// The first frame of a connection is the `ConnectResponse`; every later frame starts with a ReplyHeader.
/// A frame whose length is negative or above `maxFrameSize` is refused with a `ZooKeeperError` of code
/// `.frameTooLarge` (or `.protocolError` for a negative length), which closes the connection.
struct ZooKeeperMessageDecoder: ByteToMessageDecoder {
    typealias InboundOut = ZooKeeperServerMessage

    /// The largest payload accepted (ZooKeeper's jute.maxbuffer).
    let maxFrameSize: Int
    private var expectingConnectResponse: Bool

    init(maxFrameSize: Int = ZooKeeperConfiguration.defaultMaxBufferSize, expectingConnectResponse: Bool = true) {
        self.maxFrameSize = maxFrameSize
        self.expectingConnectResponse = expectingConnectResponse
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let message = try self.decode(buffer: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try self.decode(context: context, buffer: &buffer)
    }

    /// Decodes one message if a whole frame is buffered; consumes nothing otherwise.
    mutating func decode(buffer: inout ByteBuffer) throws(ZooKeeperError) -> ZooKeeperServerMessage? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        if length < 0 {
            throw ZooKeeperError(code: .protocolError, message: "the server sent a frame with negative length \(length); closing the connection")
        }
        if Int(length) > self.maxFrameSize {
            throw ZooKeeperError(
                code: .frameTooLarge,
                message: "the server sent a \(length)-byte frame, above the \(self.maxFrameSize)-byte limit (jute.maxbuffer); raise maxBufferSize if such large nodes are expected"
            )
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var frame = buffer.readSlice(length: Int(length))!
        do {
            return try self.decodeFrame(&frame)
        } catch {
            throw error.zooKeeperError()
        }
    }

    private mutating func decodeFrame(_ frame: inout ByteBuffer) throws(JuteDecodingError) -> ZooKeeperServerMessage {
        if self.expectingConnectResponse {
            let response = try frame.readConnectResponse()
            self.expectingConnectResponse = false
            return .connectResponse(response)
        }
        let xid = try frame.readJuteInt()
        let zxid = try frame.readJuteLong()
        let error = try frame.readJuteInt()
        switch xid {
        case ReservedXID.notification:
            return .watchEvent(try frame.readWatcherEvent(), zxid: zxid)
        case ReservedXID.ping:
            return .pingReply
        case ReservedXID.auth:
            return .authReply(error: error)
        default:
            return .reply(xid: xid, zxid: zxid, error: error, body: error == 0 ? frame : ByteBuffer())
        }
    }
}
