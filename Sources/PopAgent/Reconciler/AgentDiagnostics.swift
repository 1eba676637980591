import PopState
import Synchronization

/// Something an ``Agent`` observed, reported to ``Agent/observations()`` for diagnostics and tests.
public enum AgentObservation: Hashable, Sendable {
    /// The paths the current session follows changed; these are the paths now (see ``Agent/followedPaths``).
    case followed([String])
    /// A watch delivered this store event.
    case storeEvent(NodeEvent)
}

/// What the driver shows of the agent to other tasks: the followed paths, the count of store events, and
/// subscribers to observations. The driver is the only writer; nothing in it feeds back into the agent's decisions.
final class AgentDiagnostics: Sendable {
    private struct State {
        var followedPaths: [String] = []
        var subscribers: [Int: AsyncStream<AgentObservation>.Continuation] = [:]
        var nextSubscriber = 0
        var finished = false
    }

    private let state = Mutex(State())
    private let eventsSeen = Atomic<Int>(0)

    /// The paths the current session follows, sorted.
    var followedPaths: [String] { state.withLock { $0.followedPaths } }

    /// How many store events the watches delivered.
    var storeEventsSeen: Int { eventsSeen.load(ordering: .relaxed) }

    /// Records the paths followed now, and tells the subscribers when they changed.
    func followed(_ paths: [String]) {
        let subscribers = state.withLock { state -> [AsyncStream<AgentObservation>.Continuation] in
            guard state.followedPaths != paths else { return [] }
            state.followedPaths = paths
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.yield(.followed(paths)) }
    }

    /// Counts a store event and tells the subscribers.
    func saw(_ event: NodeEvent) {
        eventsSeen.add(1, ordering: .relaxed)
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(.storeEvent(event)) }
    }

    /// A new stream of observations.
    func subscribe() -> AsyncStream<AgentObservation> {
        let (stream, continuation) = AsyncStream.makeStream(of: AgentObservation.self)
        let id = state.withLock { state -> Int? in
            guard !state.finished else { return nil }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every subscriber's stream (the agent stopped).
    func finish() {
        let subscribers = state.withLock { state -> [AsyncStream<AgentObservation>.Continuation] in
            state.finished = true
            state.followedPaths = []
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
