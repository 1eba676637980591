import Synchronization

/// A coalescing wake-up signal: any number of ``signal()`` calls before the waiter runs count as one.
final class Wakeup: Sendable {
    private let continuation: Mutex<AsyncStream<Void>.Continuation?>
    /// The wake-ups; only one task iterates it.
    let stream: AsyncStream<Void>

    init() {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.stream = stream
        self.continuation = Mutex(continuation)
    }

    /// Wakes the waiter (once, however often it is called before the waiter runs).
    func signal() {
        _ = continuation.withLock { $0?.yield() }
    }

    /// Ends the stream.
    func finish() {
        continuation.withLock { continuation in
            continuation?.finish()
            continuation = nil
        }
    }
}
