import PopState
import Synchronization

/// The agent's open store session, lent to the scheduler, which stands in its election through it rather than
/// through a session of its own: one session per machine, so the ensemble keeps (and hears the pings of) one per
/// agent.
///
/// The agent's session task lends its store once the session is open and checked, and withdraws it before it closes
/// the store. The scheduler never closes what it borrows; it removes its own candidate node and watches when it ends
/// its part, and learns of the session's end from the store's session events like any other user of it.
final class SessionLending: Sendable {
    private struct State {
        var store: (any CoordinationStore)?
        var waiters: [Int: CheckedContinuation<(any CoordinationStore)?, Never>] = [:]
        var lastWaiter = 0
    }

    private let state = Mutex(State())

    /// Lends `store` from now until ``withdraw()``; whoever waits in ``borrow()`` gets it at once.
    func lend(_ store: any CoordinationStore) {
        let waiting = state.withLock { state in
            state.store = store
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiting { waiter.resume(returning: store) }
    }

    /// The session is about to close: nobody borrows it from now on.
    func withdraw() {
        state.withLock { $0.store = nil }
    }

    /// The session lent now, or else the next one lent; nil when the calling task is cancelled first.
    func borrow() async -> (any CoordinationStore)? {
        let id = state.withLock { state in
            state.lastWaiter += 1
            return state.lastWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: (any CoordinationStore)?? = state.withLock { state in
                    if let store = state.store { return .some(store) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}
