import NIOCore

/// Writes client messages as frames: a 4-byte length, then the record.
///
/// A frame above `maxFrameSize` is refused with a `.frameTooLarge` error instead of being sent, since the
/// server would close the connection on it. (The client checks requests before they reach the encoder, so this
/// is a last line of defence.)
struct ZooKeeperMessageEncoder: MessageToByteEncoder {
    typealias OutboundIn = ZooKeeperClientMessage

    let maxFrameSize: Int

    init(maxFrameSize: Int = ZooKeeperConfiguration.defaultMaxBufferSize) {
        self.maxFrameSize = maxFrameSize
    }

    func encode(data: ZooKeeperClientMessage, out: inout ByteBuffer) throws {
        let start = out.writerIndex
        out.writeInteger(Int32(0))
        switch data {
        case .connect(let request):
            out.writeConnectRequest(request)
        case .request(let xid, let opCode, var body):
            out.writeInteger(xid)
            out.writeInteger(opCode.rawValue)
            out.writeBuffer(&body)
        }
        let length = out.writerIndex - start - 4
        guard length <= self.maxFrameSize else {
            out.moveWriterIndex(to: start)
            throw ZooKeeperError(
                code: .frameTooLarge,
                message: "a \(length)-byte request exceeds the \(self.maxFrameSize)-byte limit (jute.maxbuffer) and was not sent"
            )
        }
        out.setInteger(Int32(length), at: start)
    }
}
