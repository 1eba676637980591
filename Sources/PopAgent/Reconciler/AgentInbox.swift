import Synchronization

/// The driver's one inbox: every source yields into it, and the driver takes everything that queued up at once, so
/// that a burst of events is fed to the core as one burst (``AgentStateMachine/beginBurst()``).
final class AgentInbox: Sendable {
    private struct State {
        var queued: [DriverInput] = []
        var waiter: CheckedContinuation<[DriverInput]?, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    /// Adds an input (ignored once the inbox is finished).
    func yield(_ input: DriverInput) {
        let waiter = state.withLock { state -> CheckedContinuation<[DriverInput]?, Never>? in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                // A waiter only waits on an empty queue: hand the input over.
                state.waiter = nil
                return waiter
            }
            state.queued.append(input)
            return nil
        }
        waiter?.resume(returning: [input])
    }

    /// Everything queued, in order, waiting for an input when there is none; `nil` once the inbox is finished or the
    /// calling task is cancelled. One task takes from the inbox.
    func next() async -> [DriverInput]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[DriverInput]?, Never>) in
                let ready: [DriverInput]?? = state.withLock { state in
                    if !state.queued.isEmpty {
                        defer { state.queued = [] }
                        return .some(state.queued)
                    }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Ends the inbox: inputs yielded from now on are dropped, and a waiting ``next()`` returns `nil`.
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            state.queued = []
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
