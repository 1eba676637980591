import Foundation
import Logging
import PopState

/// The scheduler's executor: the only owner of a ``SchedulerStateMachine``. It runs beside the agent's own driver
/// (a child task of ``Agent/run()``), in the agent's own store session (lent through ``SessionLending``), where its
/// ephemeral candidate node is its place in the election. It feeds the core every event in the order it arrived
/// and performs the actions it returns: store round trips are awaited here; the session, the predecessor watch, the
/// leader's watches (one shared stream, one task) and timers are child tasks that report back through the inbox.
/// Nothing outlives ``run()``.
struct SchedulerDriver {
    enum Event: Sendable {
        case sessionEnded
        case joined(String)
        case candidatesListed([String], ownedBySession: Set<String>)
        case predecessorGone(String)
        case storeChanged
        case stateRead(SchedulingState, factVersions: [MachineID: Int32], now: Date)
        case written
        case failed(PopError)
        case timerFired(SchedulerStateMachine.Timer)
    }

    enum Input: Sendable {
        case event(Event, epoch: Int)
        case opened(any CoordinationStore, epoch: Int)
    }

    struct Session {
        let epoch: Int
        /// Yields the candidate to delete, if any, then finishes: the session's task stops using the session.
        let stop: AsyncStream<String>.Continuation
        var store: (any CoordinationStore)?
        /// Where the leader's watches deliver (created with the first one); any event wakes the leader.
        var watchEvents: NodeEvents.Continuation?
        /// The leader's watches, to remove one when the plan no longer depends on it.
        var watches: [SchedulerStateMachine.Watch: WatchHandle] = [:]
    }

    let configuration: AgentConfiguration
    /// The agent's open session, or else its next; nil once cancelled.
    let borrowStore: @Sendable () async -> (any CoordinationStore)?
    let logger: Logger
    let paths: NamespacePaths
    var core: SchedulerStateMachine
    let inputs: AsyncStream<Input>
    let inbox: AsyncStream<Input>.Continuation
    var epoch = 0
    var session: Session?
    /// The task waiting for the next wake-up, replaced by each new one.
    var wake: (epoch: Int, at: Date)?

    init(
        configuration: AgentConfiguration, borrowStore: @escaping @Sendable () async -> (any CoordinationStore)?,
        logger: Logger, paths: NamespacePaths
    ) {
        self.configuration = configuration
        self.borrowStore = borrowStore
        var logger = logger
        logger[metadataKey: "part"] = "scheduler"
        self.logger = logger
        self.paths = paths
        core = SchedulerStateMachine(
            machine: configuration.machine, labels: configuration.labels,
            maximumRetryDelay: configuration.maximumRetryDelay)
        (inputs, inbox) = AsyncStream.makeStream(of: Input.self)
    }

    /// Runs until cancelled (when the agent stops).
    mutating func run() async {
        await withDiscardingTaskGroup { group in
            await perform(core.start(), in: &group)
            for await input in inputs {
                switch input {
                case .opened(let store, let from):
                    guard from == session?.epoch else { continue }
                    session?.store = store
                    await perform(core.sessionOpened(), in: &group)
                case .event(let event, let from):
                    // What an ended session reports concerns nothing now; between sessions, the reopen timer does.
                    guard from == epoch else { continue }
                    if case .timerFired(.wake) = event { wake = nil }
                    await perform(receive(event), in: &group)
                }
            }
            await perform(core.shutdown(), in: &group)
            group.cancelAll()
        }
    }

    mutating func receive(_ event: Event) -> [SchedulerStateMachine.Action] {
        switch event {
        case .sessionEnded: core.sessionEnded()
        case .joined(let candidate): core.joined(candidate: candidate)
        case .candidatesListed(let names, let owned): core.candidatesListed(names, ownedBySession: owned)
        case .predecessorGone(let path): core.predecessorGone(path)
        case .storeChanged: core.storeChanged()
        case .stateRead(let state, let versions, let now): core.stateRead(state, factVersions: versions, now: now)
        case .written: core.written()
        case .failed(let error): core.failed(error)
        case .timerFired(let timer): core.timerFired(timer)
        }
    }

    mutating func perform(_ actions: [SchedulerStateMachine.Action], in group: inout DiscardingTaskGroup) async {
        var index = actions.startIndex
        while index < actions.endIndex {
            // Watches asked for together are set together: one request on ZooKeeper.
            var watches: [SchedulerStateMachine.Watch] = []
            while index < actions.endIndex, case .watch(let watch) = actions[index] {
                watches.append(watch)
                index += 1
            }
            let next: [SchedulerStateMachine.Action]
            if !watches.isEmpty {
                next = await setWatches(watches, in: &group)
            } else {
                next = await perform(actions[index], in: &group)
                index += 1
            }
            if !next.isEmpty { await perform(next, in: &group) }
        }
    }

    /// Sets the leader's watches in one call; an error ends the session's part here.
    mutating func setWatches(
        _ watches: [SchedulerStateMachine.Watch], in group: inout DiscardingTaskGroup
    ) async -> [SchedulerStateMachine.Action] {
        guard let store = session?.store, let current = session?.epoch else { return [] }
        do {
            let events = watchEvents(epoch: current, in: &group)
            let handles = try await store.addWatches(watches.map(target(of:)), into: events)
            for (watch, handle) in zip(watches, handles) { session?.watches[watch] = handle }
            return []
        } catch {
            return core.sessionEnded()
        }
    }

    /// Performs one action; returns what the core asks for after a round trip's outcome.
    mutating func perform(
        _ action: SchedulerStateMachine.Action, in group: inout DiscardingTaskGroup
    ) async -> [SchedulerStateMachine.Action] {
        switch action {
        case .openSession:
            openSession(in: &group)
            return []
        case .endSession(let candidate):
            guard let ending = session else { return [] }
            session = nil
            for handle in ending.watches.values { handle.cancel() }
            ending.watchEvents?.finish()
            if let candidate { ending.stop.yield(candidate) }
            ending.stop.finish()
            return []
        case .schedule(let timer, let delay):
            let current = epoch
            group.addTask { [inbox] in
                try? await Task.sleep(for: delay)
                if !Task.isCancelled { inbox.yield(.event(.timerFired(timer), epoch: current)) }
            }
            return []
        case .wake(let at):
            guard let current = session?.epoch, wake.map({ $0.epoch != current || at < $0.at }) ?? true else { return [] }
            wake = (current, at)
            let delay = max(0, at.timeIntervalSinceNow)
            group.addTask { [inbox] in
                try? await Task.sleep(for: .milliseconds(Int(delay * 1000) + 1))
                if !Task.isCancelled { inbox.yield(.event(.timerFired(.wake), epoch: current)) }
            }
            return []
        case .note(let note):
            log(note)
            return []
        case .unwatch(let watch):
            session?.watches.removeValue(forKey: watch)?.cancel()
            return []
        case .watch(let watch):
            return await setWatches([watch], in: &group)
        case .join, .listCandidates, .retire, .watchPredecessor, .readState, .write:
            guard let store = session?.store, let current = session?.epoch else { return [] }
            return await roundTrip(action, store: store, epoch: current, in: &group)
        }
    }

    /// Performs an action on the session's store.
    mutating func roundTrip(
        _ action: SchedulerStateMachine.Action, store: any CoordinationStore, epoch current: Int,
        in group: inout DiscardingTaskGroup
    ) async -> [SchedulerStateMachine.Action] {
        let namespace: PopNamespace
        do {
            namespace = try PopNamespace(store: store, prefix: paths.root)
        } catch {
            return core.sessionEnded()
        }
        switch action {
        case .join(let labels):
            do {
                if !labels.isEmpty {
                    try await namespace.updateFacts(configuration.machine) { $0.labels.merge(labels) { _, new in new } }
                }
                if try await store.exists(paths.election) == nil {
                    do {
                        _ = try await store.create(paths.election, data: [], mode: .persistent)
                    } catch let error as PopError where error.code == .conflict {
                    }
                }
                let candidate = try await store.create(
                    paths.election + "/" + SchedulerStateMachine.candidatePrefix(configuration.machine),
                    data: Array(configuration.machine.rawValue.utf8), mode: .ephemeralSequential)
                return core.joined(candidate: candidate)
            } catch {
                logger.warning("could not stand in the scheduler election", metadata: ["error": "\(error)"])
                return core.sessionEnded()
            }
        case .listCandidates:
            do {
                let names = try await store.children(paths.election)
                // This machine's other candidates are this session's leftovers only if the session made them.
                let mine = core.candidate.map(NodePath.name)
                var owned: Set<String> = []
                let machine = configuration.machine
                for name in names where name != mine && SchedulerStateMachine.isCandidate(name, of: machine) {
                    let stat = try await store.exists(paths.election + "/" + name)
                    if stat?.ephemeralOwner == store.sessionID { owned.insert(name) }
                }
                return core.candidatesListed(names, ownedBySession: owned)
            } catch {
                return core.sessionEnded()
            }
        case .retire(let candidates):
            // Gone already, or the session with it: either way it stands for nothing any more.
            for candidate in candidates { try? await store.delete(candidate, version: nil) }
            return []
        case .watchPredecessor(let path):
            group.addTask { [inbox] in
                do {
                    let (stat, watch) = try await store.existsAndWatch(path)
                    if stat != nil { _ = try await watch.event() } else { watch.cancel() }
                    inbox.yield(.event(.predecessorGone(path), epoch: current))
                } catch {
                    inbox.yield(.event(.sessionEnded, epoch: current))
                }
            }
            return []
        case .readState:
            do {
                let (state, versions) = try await namespace.schedulingState()
                return core.stateRead(state, factVersions: versions, now: Date())
            } catch {
                return core.failed(error as? PopError ?? PopError(.system, "\(error)"))
            }
        case .write(let plan, let versions, let fence):
            do {
                try await namespace.apply(plan, factVersions: versions, fence: fence)
                return core.written()
            } catch {
                return core.failed(error as? PopError ?? PopError(.system, "\(error)"))
            }
        default:
            return []
        }
    }

    /// The node a watch follows, and whether it follows the subtree below it.
    func target(of watch: SchedulerStateMachine.Watch) -> (path: String, subtree: Bool) {
        switch watch {
        case .registrations: (paths.machines, false)
        case .facts: (paths.facts, true)
        case .services: (paths.services, false)
        case .policy(let name): (paths.scheduling(name), false)
        case .placements(let name): (paths.placements(name), false)
        case .instances(let name): (paths.service(name), true)
        }
    }

    /// The session's stream of watch events, made with its first watch, with the one task that wakes the leader.
    /// It keeps only the newest event: however many arrive during a read, they cost one more read. The session's end
    /// finishes it with an error, which ends the session here too.
    mutating func watchEvents(epoch current: Int, in group: inout DiscardingTaskGroup) -> NodeEvents.Continuation {
        if let existing = session?.watchEvents { return existing }
        let (events, continuation) = NodeEvents.makeStream(bufferingPolicy: .bufferingNewest(1))
        session?.watchEvents = continuation
        group.addTask { [inbox] in
            do {
                for try await _ in events { inbox.yield(.event(.storeChanged, epoch: current)) }
            } catch {
                inbox.yield(.event(.sessionEnded, epoch: current))
            }
        }
        return continuation
    }

    /// Starts a session's task: it borrows the agent's session (waiting for one to be open), reports it, reports the
    /// session's end, and once the driver ends its use of the session deletes the candidate it names. The store is
    /// the agent's to close.
    mutating func openSession(in group: inout DiscardingTaskGroup) {
        epoch += 1
        let current = epoch
        let (stopped, stop) = AsyncStream.makeStream(of: String.self)
        session = Session(epoch: current, stop: stop)
        group.addTask { [borrowStore, inbox] in
            guard let store = await borrowStore() else { return }
            inbox.yield(.opened(store, epoch: current))
            var retired: String?
            await withDiscardingTaskGroup { inner in
                inner.addTask {
                    for await event in store.sessionEvents() where event.isTerminal {
                        inbox.yield(.event(.sessionEnded, epoch: current))
                        return
                    }
                }
                for await candidate in stopped { retired = candidate }
                inner.cancelAll()
            }
            // Deleted even when cancelled (at shutdown), when the session outlives the scheduler's part in it; a
            // session that ended took the candidate with it, and a candidate this fails to delete is retired at the
            // next round.
            if let retired {
                await Task { try? await store.delete(retired, version: nil) }.value
            }
        }
    }

    func log(_ note: SchedulerStateMachine.Note) {
        switch note {
        case .elected:
            logger.info("elected scheduler")
        case .following(let predecessor):
            logger.debug("scheduler candidate follows", metadata: ["predecessor": "\(predecessor)"])
        case .placed(let change):
            logger.info("schedule: \(change)")
        case .shortfall(let service, let reason):
            logger.warning("cannot place every instance", metadata: ["service": "\(service)", "reason": "\(reason)"])
        case .failed(let message):
            logger.warning("scheduling failed; retrying", metadata: ["error": "\(message)"])
        case .inconsistency(let what):
            logger.error("scheduler inconsistency: \(what)")
        }
    }
}
