import NIOCore

/// A one-shot watch set by `getData`, `exists` or `getChildren`: it fires once, on the next change.
///
/// Await `event` to get the change. It fails with `.sessionExpired` or `.clientClosed` if the session ends
/// first, and with `.watchNotRequested` when the call did not ask for a watch.
public struct ZooKeeperWatch: Sendable {
    let future: EventLoopFuture<ZooKeeperWatchEvent>?

    /// The change that triggered the watch.
    public var event: ZooKeeperWatchEvent {
        get async throws {
            guard let future else { throw ZooKeeperError(code: .watchNotRequested) }
            return try await future.get()
        }
    }
}

/// The events of a persistent watch added with `addWatch`, in order and never dropped.
///
/// The sequence ends after `removeWatches` (the last element is `.persistentWatchRemoved`), ends normally when
/// the client closes, and throws when the session expires.
public typealias ZooKeeperWatchStream = AsyncThrowingStream<ZooKeeperWatchEvent, any Error>
