import Synchronization

/// A watch that fires once, on the first change after it was set (ZooKeeper's one-shot watch).
///
/// Await ``event()`` to learn what happened; read again (leaving a new watch) to follow further changes.
public final class OneShotWatch: Sendable {
    private enum State {
        case waiting([Int: CheckedContinuation<NodeEvent, any Error>], nextWaiter: Int)
        case done(Result<NodeEvent, PopError>)
    }

    private let state = Mutex<State>(.waiting([:], nextWaiter: 0))
    private let onCancel: @Sendable () -> Void

    /// Creates a watch; `onCancel` lets the store forget it when the user cancels it.
    package init(onCancel: @escaping @Sendable () -> Void = {}) {
        self.onCancel = onCancel
    }

    /// Waits for the watched change. Throws ``PopError`` when the session ended first, or `CancellationError`.
    public func event() async throws -> NodeEvent {
        let id: Int? = state.withLock { state in
            if case .waiting(let waiters, let next) = state {
                state = .waiting(waiters, nextWaiter: next + 1)
                return next
            }
            return nil
        }
        guard let id else { return try result!.get() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<NodeEvent, any Error>) in
                let done: Result<NodeEvent, PopError>? = state.withLock { state in
                    switch state {
                    case .waiting(var waiters, let next):
                        if Task.isCancelled { return nil }
                        waiters[id] = continuation
                        state = .waiting(waiters, nextWaiter: next)
                        return nil
                    case .done(let result):
                        return result
                    }
                }
                if let done {
                    continuation.resume(with: done.mapError { $0 as any Error })
                } else if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let continuation: CheckedContinuation<NodeEvent, any Error>? = state.withLock { state in
                guard case .waiting(var waiters, let next) = state else { return nil }
                let removed = waiters.removeValue(forKey: id)
                state = .waiting(waiters, nextWaiter: next)
                return removed
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// The outcome, once the watch has fired or ended.
    public var result: Result<NodeEvent, PopError>? {
        state.withLock { state in
            if case .done(let result) = state { return result }
            return nil
        }
    }

    /// Removes the watch; a pending ``event()`` throws `CancellationError`.
    public func cancel() {
        let waiters = state.withLock { state -> [CheckedContinuation<NodeEvent, any Error>] in
            guard case .waiting(let waiters, _) = state else { return [] }
            state = .done(.failure(PopError(.system, "The watch was cancelled.")))
            return Array(waiters.values)
        }
        onCancel()
        for waiter in waiters { waiter.resume(throwing: CancellationError()) }
    }

    /// Fires the watch (only the first call has an effect). Returns whether this call fired it.
    @discardableResult
    package func fire(_ result: Result<NodeEvent, PopError>) -> Bool {
        let waiters = state.withLock { state -> [CheckedContinuation<NodeEvent, any Error>]? in
            guard case .waiting(let waiters, _) = state else { return nil }
            state = .done(result)
            return Array(waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(with: result.mapError { $0 as any Error }) }
        return true
    }
}
