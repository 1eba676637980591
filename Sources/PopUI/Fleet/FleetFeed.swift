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
///
/// CPU and memory are not in the store: they are facts the agents measure when asked (``FleetResources``). While a
/// page is open the feed asks every `resourceInterval` (a measure between two samples has no event to wait for), puts
/// the answers into the newest model, and the pages get the cells that changed.
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
        /// The newest model read from the store, and its machines' records (where their agents listen).
        var base: FleetModel?
        var records: [MachineRecord] = []
        /// The newest sample of the instances' CPU and memory, by machine.
        var usage: [String: ResourceReport] = [:]
    }

    /// Asks the agents what the model's instances use (by machine); those that do not answer are missing.
    public typealias ResourceSampler = @Sendable (FleetModel, [MachineRecord]) async -> [String: ResourceReport]

    private let namespace: PopNamespace
    private let logger: Logger
    private let locked = Mutex(Locked())
    private let demand: AsyncStream<Demand>
    private let demandContinuation: AsyncStream<Demand>.Continuation
    private let resources: ResourceSampler?
    private let resourceInterval: Duration

    /// A feed of `namespace`, with the instances' CPU and memory from `resources` every `resourceInterval` while a
    /// page is open (none without it).
    public init(
        namespace: PopNamespace, logger: Logger, resources: ResourceSampler? = nil,
        resourceInterval: Duration = .seconds(5)
    ) {
        self.namespace = namespace
        self.logger = logger
        self.resources = resources
        self.resourceInterval = resourceInterval
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
        locked.withLock { $0.usage = [:] }
        do {
            let changes = try await namespace.store.changes(under: namespace.prefix)
            try await readAndDeliver()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await _ in changes {
                        try await self.readAndDeliver()
                    }
                }
                if let resources {
                    group.addTask { try await self.sample(resources) }
                }
                defer { group.cancelAll() }
                try await group.next()
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

    /// Asks the agents now and every `resourceInterval`, until cancelled.
    private func sample(_ resources: ResourceSampler) async throws {
        while true {
            let (base, records) = locked.withLock { ($0.base, $0.records) }
            if let base {
                let usage = await resources(base, records)
                try Task.checkCancellation()
                deliver { locked in
                    locked.usage = usage
                    return locked.base?.withResources(usage)
                }
            }
            try await Task.sleep(for: resourceInterval)
        }
    }

    /// Sends the model `update` makes (under the lock, so that the store's newest read and the newest sample go
    /// together) to the subscribers the state machine names.
    private func deliver(_ update: (inout Locked) -> FleetModel?) {
        let (model, receivers) = locked.withLock { locked -> (FleetModel?, [AsyncStream<Item>.Continuation]) in
            guard let model = update(&locked) else { return (nil, []) }
            switch locked.machine.read(model) {
            case .discard: return (nil, [])
            case .deliver(_, let ids): return (model, ids.compactMap { locked.subscribers[$0] })
            }
        }
        guard let model else { return }
        for receiver in receivers { receiver.yield(.model(model)) }
    }

    private func readAndDeliver() async throws {
        let snapshot: StatusSnapshot
        do {
            snapshot = try await namespace.status()
        } catch let error as PopError where error.code != .storeUnreachable && error.code != .permissionDenied {
            // The namespace may be gone (`pop init --force`) or damaged: say so, keep following.
            let receivers = locked.withLock { locked in
                locked.machine.readFailed().compactMap { locked.subscribers[$0] }
            }
            for receiver in receivers { receiver.yield(.problem(error.message)) }
            return
        }
        let base = FleetModel(snapshot: snapshot)
        deliver { locked in
            locked.base = base
            locked.records = snapshot.machines
            return base.withResources(locked.usage)
        }
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
