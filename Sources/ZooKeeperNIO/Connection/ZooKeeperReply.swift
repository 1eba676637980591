import NIOCore

/// Where the answer to a request goes: a caller suspended in `ZooKeeperClient.execute`, or a promise.
///
/// A caller's continuation is resumed straight from the event loop, without a future and its callback list in
/// between.
enum ZooKeeperReply: Sendable {
    case continuation(UnsafeContinuation<ByteBuffer, any Error>)
    case promise(EventLoopPromise<ByteBuffer>)

    func succeed(_ body: ByteBuffer) {
        switch self {
        case .continuation(let continuation): continuation.resume(returning: body)
        case .promise(let promise): promise.succeed(body)
        }
    }

    func fail(_ error: any Error) {
        switch self {
        case .continuation(let continuation): continuation.resume(throwing: error)
        case .promise(let promise): promise.fail(error)
        }
    }
}
