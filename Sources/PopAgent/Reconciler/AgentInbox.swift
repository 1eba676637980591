import Synchronization

/// The driver's one inbox: every source yields into it, and the driver takes everything that queued up at once, so
/// that a burst of events is fed to the core as one burst (``AgentStateMachine/beginBurst()``).
///
/// A waiting driver is only woken by an input; it takes the queue when it runs, so whatever arrives between the
/// wake-up and its turn on a busy machine joins the same burst.
final class AgentInbox: Sendable {
    private struct State {
        var queued: [DriverInput] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    /// Adds an input (ignored once the inbox is finished).
    func yield(_ input: DriverInput) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            state.queued.append(input)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Everything queued, in order, waiting for an input when there is none; `nil` once the inbox is finished or the
    /// calling task is cancelled. One task takes from the inbox.
    func next() async -> [DriverInput]? {
        while true {
            let taken: [DriverInput]?? = state.withLock { state in
                if !state.queued.isEmpty {
                    defer { state.queued = [] }
                    return .some(state.queued)
                }
                return state.finished ? .some(nil) : nil
            }
            if let taken { return taken }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state in
                        if !state.queued.isEmpty || state.finished || Task.isCancelled { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                wake()
            }
        }
    }

    /// Ends the inbox: inputs yielded from now on are dropped, and a waiting ``next()`` returns `nil`.
    func finish() {
        state.withLock { state in
            state.finished = true
            state.queued = []
        }
        wake()
    }

    private func wake() {
        let waiter = state.withLock { state in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
