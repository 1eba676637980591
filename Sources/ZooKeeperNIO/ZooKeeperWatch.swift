import NIOCore

/// A one-shot watch set by `getData`, `exists` or `getChildren`: it fires once, on the next change.
///
/// Await `event` (or pass a handler to `whenComplete`) to get the change. It fails with `.sessionExpired` or
/// `.clientClosed` if the session ends first, and with `.watchNotRequested` when the call did not ask for a watch.
/// `cancel()` removes a watch that is no longer wanted, here and on the server.
public struct ZooKeeperWatch: Sendable {
    let future: EventLoopFuture<ZooKeeperWatchEvent>?
    let controller: ZooKeeperSessionController?

    init(future: EventLoopFuture<ZooKeeperWatchEvent>?, controller: ZooKeeperSessionController? = nil) {
        self.future = future
        self.controller = controller
    }

    /// The change that triggered the watch.
    public var event: ZooKeeperWatchEvent {
        get async throws {
            guard let future else { throw ZooKeeperError(code: .watchNotRequested) }
            return try await future.get()
        }
    }

    /// Calls `handler` once, on the client's event loop, with the change or the error that ended the watch; no task
    /// waits in between.
    public func whenComplete(_ handler: @escaping @Sendable (Result<ZooKeeperWatchEvent, any Error>) -> Void) {
        guard let future else {
            handler(.failure(ZooKeeperError(code: .watchNotRequested)))
            return
        }
        future.whenComplete(handler)
    }

    /// Removes the watch: the client forgets it, and removes the server's watch too unless another watch of this
    /// client on the same node still needs it. The watch then completes with a `dataWatchRemoved` or
    /// `childWatchRemoved` event. Nothing happens once it has fired or ended.
    public func cancel() {
        guard let future, let controller else { return }
        controller.eventLoop.execute { controller.cancelWatch(future) }
    }
}

/// The events of a persistent watch added with `addWatch`, in order and never dropped.
///
/// The sequence ends after `removeWatches` (the last element is `.persistentWatchRemoved`), ends normally when
/// the client closes, and throws when the session expires.
public typealias ZooKeeperWatchStream = AsyncThrowingStream<ZooKeeperWatchEvent, any Error>
