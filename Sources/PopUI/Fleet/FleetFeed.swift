import Foundation
import Logging
import PopState
import ServiceLifecycle
import Synchronization

/// Follows pop's namespace with a store watch while at least one page looks, and hands each page the newest model.
///
/// One subtree watch (``CoordinationStore/changes(under:)``) wakes the feed; however many changes arrive while it
/// reads the namespace, they cost one more read (a burst is coalesced), and each page is sent only the difference to
/// what it has. While no page is open the feed holds no watch and does no work.
public final class FleetFeed: Service, Sendable {
    /// What a subscriber receives.
    public enum Item: Sendable, Hashable {
        /// The newest model.
        case model(FleetModel)
        /// Reading the namespace failed; the last model stays the newest known.
        case problem(String)
    }

    /// One page's view of the feed; dropping it (or ``cancel()``) unsubscribes.
    public struct Subscription: Sendable {
        /// The newest item (older ones not yet taken are replaced: only the newest model matters).
        public let items: AsyncStream<Item>
        let cancelHandler: @Sendable () -> Void

        /// Stops the subscription; ``items`` finishes.
        public func cancel() { cancelHandler() }
    }

    private enum Demand: Sendable {
        case follow, stop
        case failed(PopError)
    }

    private struct Locked {
        var machine = FleetFeedStateMachine()
        var subscribers: [Int: AsyncStream<Item>.Continuation] = [:]
        var nextID = 0
    }

    private let namespace: PopNamespace
    private let logger: Logger
    private let locked = Mutex(Locked())
    private let demand: AsyncStream<Demand>
    private let demandContinuation: AsyncStream<Demand>.Continuation

    /// A feed of `namespace`.
    public init(namespace: PopNamespace, logger: Logger) {
        self.namespace = namespace
        self.logger = logger
        (demand, demandContinuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    /// Subscribes a page: it gets the newest model at once if there is one, else after the first read.
    public func subscribe() -> Subscription {
        let (items, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (id, action) = locked.withLock { locked in
            let id = locked.nextID
            locked.nextID += 1
            locked.subscribers[id] = continuation
            return (id, locked.machine.subscribe(id))
        }
        switch action {
        case .startFollowing: demandContinuation.yield(.follow)
        case .deliver(let model): continuation.yield(.model(model))
        case .waitForRead: break
        }
        let cancel: @Sendable () -> Void = { [weak self] in self?.unsubscribe(id) }
        continuation.onTermination = { _ in cancel() }
        return Subscription(items: items, cancelHandler: cancel)
    }

    private func unsubscribe(_ id: Int) {
        let (action, continuation) = locked.withLock { locked in
            (locked.machine.unsubscribe(id), locked.subscribers.removeValue(forKey: id))
        }
        continuation?.finish()
        if action == .stopFollowing { demandContinuation.yield(.stop) }
    }

    /// Follows the store whenever someone looks, until the service group shuts down. A store whose session has
    /// ended (expired, closed, refused) ends the feed with that error.
    public func run() async throws {
        defer { endSubscriptions() }
        try await cancelWhenGracefulShutdown { [self] in try await self.serve() }
    }

    private func serve() async throws {
        var demands = demand.makeAsyncIterator()
        while let next = await demands.next() {
            guard case .follow = next else {
                if case .failed(let error) = next { throw error }
                continue
            }
            // Follow until the last page leaves (or following fails).
            let failure: PopError? = await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.follow() }
                defer { group.cancelAll() }
                while let next = await demands.next() {
                    switch next {
                    case .follow: continue
                    case .stop: return nil
                    case .failed(let error): return error
                    }
                }
                return nil
            }
            if let failure { throw failure }
        }
    }

    /// One period of following: set the watch, read, and read again after each burst of changes.
    private func follow() async {
        logger.debug("following the namespace", metadata: ["store": "\(namespace.store)"])
        do {
            let changes = try await namespace.store.changes(under: namespace.prefix)
            try await readAndDeliver()
            for try await _ in changes {
                try await readAndDeliver()
            }
        } catch is CancellationError {
        } catch let error as PopError where error.code == .storeUnreachable || error.code == .permissionDenied {
            if !Task.isCancelled { demandContinuation.yield(.failed(error)) }
        } catch {
            if !Task.isCancelled {
                demandContinuation.yield(.failed(PopError(.storeUnreachable, "The store's watch ended: \(error)")))
            }
        }
        logger.debug("stopped following the namespace")
    }

    private func readAndDeliver() async throws {
        let model: FleetModel
        do {
            model = FleetModel(snapshot: try await namespace.status())
        } catch let error as PopError where error.code != .storeUnreachable && error.code != .permissionDenied {
            // The namespace may be gone (`pop init --force`) or damaged: say so, keep following.
            let receivers = locked.withLock { locked in
                locked.machine.readFailed().compactMap { locked.subscribers[$0] }
            }
            for receiver in receivers { receiver.yield(.problem(error.message)) }
            return
        }
        let receivers = locked.withLock { locked -> [AsyncStream<Item>.Continuation] in
            switch locked.machine.read(model) {
            case .discard: return []
            case .deliver(_, let ids): return ids.compactMap { locked.subscribers[$0] }
            }
        }
        for receiver in receivers { receiver.yield(.model(model)) }
    }

    private func endSubscriptions() {
        let continuations = locked.withLock { locked in
            _ = locked.machine.ended()
            defer { locked.subscribers = [:] }
            return Array(locked.subscribers.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
