/// The fleet feed's decisions: whether the store is followed, and who is sent which model.
///
/// A pure value: each event returns what to do, and ``FleetFeed`` does it. While nobody looks, nothing is followed
/// (no watch is held, nothing is read); the first subscriber starts following, the last one to leave stops it.
struct FleetFeedStateMachine {
    enum State: Equatable {
        /// Nobody looks; no watch.
        case idle
        /// Following the store for these subscribers; `latest` is the newest model read, if any yet.
        case following(subscribers: Set<Int>, latest: FleetModel?)
    }

    private(set) var state: State = .idle

    enum SubscribeAction: Equatable {
        /// The first subscriber: set the watch and read.
        case startFollowing
        /// Send the newest model to the new subscriber at once.
        case deliver(FleetModel)
        /// The first read is still under way; the subscriber gets its result.
        case waitForRead
    }

    mutating func subscribe(_ id: Int) -> SubscribeAction {
        switch state {
        case .idle:
            state = .following(subscribers: [id], latest: nil)
            return .startFollowing
        case .following(var subscribers, let latest):
            subscribers.insert(id)
            state = .following(subscribers: subscribers, latest: latest)
            return latest.map(SubscribeAction.deliver) ?? .waitForRead
        }
    }

    enum UnsubscribeAction: Equatable {
        /// The last subscriber left: drop the watch.
        case stopFollowing
        case none
    }

    mutating func unsubscribe(_ id: Int) -> UnsubscribeAction {
        switch state {
        case .idle:
            return .none  // Already stopped (the feed ended); nothing is held.
        case .following(var subscribers, let latest):
            guard subscribers.remove(id) != nil else { return .none }
            if subscribers.isEmpty {
                state = .idle
                return .stopFollowing
            }
            state = .following(subscribers: subscribers, latest: latest)
            return .none
        }
    }

    enum ReadAction: Equatable {
        /// Send the model to these subscribers.
        case deliver(FleetModel, to: Set<Int>)
        /// Nobody looks any more (the read finished after the last one left).
        case discard
    }

    mutating func read(_ model: FleetModel) -> ReadAction {
        switch state {
        case .idle:
            return .discard
        case .following(let subscribers, _):
            state = .following(subscribers: subscribers, latest: model)
            return .deliver(model, to: subscribers)
        }
    }

    /// A read failed: the subscribers are told; the model they have stays the newest known.
    func readFailed() -> Set<Int> {
        switch state {
        case .idle: []
        case .following(let subscribers, _): subscribers
        }
    }

    /// The feed ended (its service stopped): everyone is let go.
    mutating func ended() -> Set<Int> {
        defer { state = .idle }
        return readFailed()
    }
}
