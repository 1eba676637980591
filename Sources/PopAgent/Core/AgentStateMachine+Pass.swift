import Foundation
import PopState

/// The reconcile pass: store changes gather in ``ActiveSession/pending``; a pass takes them all, lists the services
/// when the list may have changed (setting the watches of new ones before reading them), reads what changed in
/// batches, plans, holds back configuration restarts that wait for their turn in a rollout, carries out the rest,
/// and looks at the task requests that changed.
extension AgentStateMachine {
    // MARK: Store changes

    /// A watch delivered a change.
    mutating func storeChanged(_ event: NodeEvent) -> [AgentAction] {
        let machinePath = paths.machine(machine)
        switch session {
        case .settingUp(var setup):
            // The first pass after registering reads everything; only this machine's node is worth noting now.
            if event.path == machinePath, event.kind != .deleted {
                setup.machineNodeWritten = true
                session = .settingUp(setup)
            }
            return []
        case .registered(var active):
            if event.path == machinePath {
                if event.kind != .deleted {
                    guard !active.machineNodeWritten else { return [] }
                    session = .modifying
                    active.machineNodeWritten = true
                    session = .registered(active)
                    return []
                }
                // Before this session's own write of the node, a deletion is that of the stale registration it
                // replaced.
                guard active.machineNodeWritten else { return [] }
                return sessionFailed(PopError(.conflict, "This machine's registration was deleted."))
            }
            session = .modifying
            active.pending.services.formUnion(rolloutWakeups(event))
            active.pending.services.formUnion(requirementWakeups(event))
            switch StoreChange.classify(
                event, servicesPath: paths.services, assignmentsPath: paths.assignments(machine), machine: machine)
            {
            case .instanceRecord(let service)?:
                recordDeleted(service, in: &active)
            case let change?:
                active.pending.add(change)
            case nil:
                break
            }
            session = .registered(active)
            return proceed()
        case .idle, .opening, .waitingToReopen, .stopped, .modifying:
            return unexpected("storeChanged(\(event))")
        }
    }

    /// The services a store change wakes while their restart waits for its turn: a change below such a service's
    /// placements (another machine's instance record), or any machine registering or going away.
    func rolloutWakeups(_ event: NodeEvent) -> Set<ServiceName> {
        guard !rolloutWaits.isEmpty else { return [] }
        if event.path == paths.machines { return event.kind == .childrenChanged ? rolloutWaits : [] }
        if event.path.hasPrefix(paths.machines + "/") { return event.kind == .dataChanged ? [] : rolloutWaits }
        guard event.path.hasPrefix(paths.services + "/") else { return [] }
        let parts = event.path.dropFirst(paths.services.count + 1).split(separator: "/")
        guard parts.count >= 3, parts[1] == "machines", let service = try? ServiceName(String(parts[0])) else {
            return []
        }
        return rolloutWaits.contains(service) ? [service] : []
    }

    /// The watches that follow one service placed on this machine: its spec, and this machine's placement with this
    /// machine's instance record below it. New task requests and recorded packages are announced by this machine's
    /// assignment of the service (one subtree watch for all of them, set with the session's base watches).
    func serviceWatches(_ name: ServiceName) -> [WatchKey] {
        [.node(paths.service(name)), .subtree(paths.placement(name, machine))]
    }

    // MARK: The pass

    /// Takes every pending change into a new pass.
    mutating func startPass(in active: inout ActiveSession) -> AgentAction {
        let changes = active.pending
        active.pending = PendingChanges()
        if changes.everything || changes.serviceList {
            active.pass = .listing(changes)
            return .listServices
        }
        let scope = changes.services.union(changes.tasks.keys)
        active.pass = .reading(changes, scope: scope)
        return .readServices(scope.sorted())
    }

    /// The services are listed: follow new ones (watch first, then read), stop following removed ones.
    mutating func servicesListed(_ names: [String]) -> [AgentAction] {
        guard case .registered(var active) = session, case .listing(let changes) = active.pass else {
            return unexpected("servicesListed")
        }
        session = .modifying
        var actions: [AgentAction] = []
        var listed: Set<ServiceName> = []
        var invalid: [String] = []
        for name in names {
            if let service = try? ServiceName(name) { listed.insert(service) } else { invalid.append(name) }
        }
        if changes.everything, !invalid.isEmpty { actions.append(.note(.invalidServiceNames(invalid))) }
        let added = listed.subtracting(active.watchedServices)
        let removed = active.watchedServices.subtracting(listed)
        var newWatches: Set<WatchKey> = []
        if !active.followsWholeNamespace {
            if !removed.isEmpty {
                let prefixes = removed.map { paths.service($0) }
                let dropped = active.watches.filter { key in
                    prefixes.contains { key.path == $0 || key.path.hasPrefix($0 + "/") }
                }
                if !dropped.isEmpty {
                    active.watches.subtract(dropped)
                    actions.append(.dropWatches(dropped))
                }
                active.watchedServices.subtract(removed)
            }
            // Counted as followed once the store has set them (a failed pass sets them again).
            newWatches = Set(added.flatMap { serviceWatches($0) }).subtracting(active.watches)
        }
        if newWatches.isEmpty { active.watchedServices = listed }
        let scope: Set<ServiceName>
        if changes.everything {
            templates = Set(services.values.compactMap { $0.placed?.spec.template })
            scope = listed.union(services.keys)
        } else {
            scope = changes.services.union(changes.tasks.keys).union(added).union(removed)
        }
        if newWatches.isEmpty {
            active.pass = .reading(changes, scope: scope)
            actions.append(.readServices(scope.sorted()))
        } else {
            active.pass = .watchingServices(changes, scope: scope, listed: listed, adding: newWatches)
            actions.append(.addWatches(newWatches, purpose: .services))
        }
        session = .registered(active)
        return actions + proceed()
    }

    /// The services in scope are read: fold them in, plan, and gate the configuration restarts.
    mutating func servicesRead(_ snapshots: [ServiceName: ServiceSnapshot], at now: Date) -> [AgentAction] {
        guard case .registered(var active) = session, case .reading(let changes, let scope) = active.pass else {
            return unexpected("servicesRead")
        }
        session = .modifying
        var actions: [AgentAction] = []
        for name in snapshots.keys.sorted() {
            actions += apply(snapshots[name]!, of: name, at: now)
        }
        var planned = plan(scope)
        actions += gateOnRequirements(&planned, scope: scope, at: now)
        let tasks = tasksToExamine(changes, snapshots: snapshots)
        let restarts = planned.compactMap { action -> ServiceName? in
            if case .restart(let desired, .configurationChanged) = action { return desired.service }
            return nil
        }
        if restarts.isEmpty {
            actions += gate(planned, held: [], scope: scope, tasks: tasks, changes: changes, in: &active)
        } else {
            active.pass = .gating(changes, scope: scope, planned: planned, tasks: tasks)
            actions.append(.readRollouts(restarts))
        }
        session = .registered(active)
        return actions + proceed()
    }

    /// The rollouts of the planned configuration restarts are read: hold back those whose turn has not come.
    mutating func rolloutsRead(_ views: [ServiceName: RolloutView]) -> [AgentAction] {
        guard case .registered(var active) = session,
            case .gating(let changes, let scope, let planned, let tasks) = active.pass
        else {
            return unexpected("rolloutsRead")
        }
        session = .modifying
        var held: Set<ServiceName> = []
        var actions: [AgentAction] = []
        var recheck: (at: Date, now: Date)?
        for action in planned {
            guard case .restart(let desired, .configurationChanged) = action else { continue }
            let view = views[desired.service]
            switch decide(desired, view) {
            case .restart:
                break
            case .wait(let until):
                held.insert(desired.service)
                if let until, let now = view?.now, until < recheck?.at ?? .distantFuture { recheck = (until, now) }
            case .revert(let reason):
                held.insert(desired.service)
                actions.append(.revertRollout(desired.service, reason: reason))
            }
        }
        if let recheck {
            let delay = max(1, Int((recheck.at.timeIntervalSince(recheck.now) * 1000).rounded(.up)) + 1)
            actions.append(.schedule(.recheckRollouts, after: .milliseconds(delay)))
        }
        actions += gate(planned, held: held, scope: scope, tasks: tasks, changes: changes, in: &active)
        session = .registered(active)
        return actions + proceed()
    }

    /// A step of the pass failed: keep its changes for the next pass, after a pause.
    mutating func passFailed(_ error: any Error) -> [AgentAction] {
        guard case .registered(var active) = session, let changes = active.pass.changes else {
            return unexpected("passFailed")
        }
        session = .modifying
        active.pending.merge(changes)
        active.pass = .paused
        session = .registered(active)
        return [
            .note(.passFailed(PopError.wrapping(error))), .schedule(.resumePasses, after: Configuration.retryPause),
        ]
    }

    // MARK: Steps

    /// Folds what the store says about a service into its entry.
    mutating func apply(_ snapshot: ServiceSnapshot, of name: ServiceName, at now: Date) -> [AgentAction] {
        var entry = services[name] ?? ServiceEntry()
        let oldProblem = entry.problem
        // The listing is the truth about which requests exist; running ones finish first.
        let listed = Set(snapshot.tasks)
        entry.tasks = entry.tasks.filter { listed.contains($0.key.rawValue) || $0.value == .running }
        if let spec = snapshot.spec, let signature = snapshot.signature {
            switch (spec, snapshot.placement) {
            case (_, nil):
                entry.intent = .notPlaced
            case (.success(var spec), .success(let placement)?):
                // Services made from one template share one copy of it, which keeps an agent with many services small.
                spec.template = templates.insert(spec.template).memberAfterInsert
                entry.intent = .placed(
                    PlacedService(
                        spec: spec, signature: signature, packages: snapshot.packages,
                        restartGeneration: placement.restartGeneration, requirements: snapshot.requirements))
            case (.failure(let error), _?):
                entry.intent = .unusable(problem(error.message, before: entry.intent, at: now), signature: nil)
            case (.success, .failure(let error)?):
                entry.intent = .unusable(problem(error.message, before: entry.intent, at: now), signature: signature)
            }
        } else {
            entry.intent = .absent
        }
        let newProblem = entry.problem
        services[name] = entry
        if let spec = entry.placed?.spec, spec.template.requires != nil {
            requiring[name] = spec.requiredServices
        } else {
            requiring[name] = nil
        }
        var actions: [AgentAction] = []
        if let newProblem, newProblem != oldProblem { actions.append(.note(.serviceUnusable(name, newProblem))) }
        if newProblem != oldProblem { markRecord(name) }
        forgetIfUnneeded(name)
        return actions
    }

    /// A problem with `message`, dated when it was first seen.
    func problem(_ message: String, before: ServiceEntry.Intent, at now: Date) -> Problem {
        if case .unusable(let old, _) = before, old.message == message { return old }
        return Problem(message: message, since: now)
    }

    /// The plan for the services in scope; an unusable service or one with a stop in flight is left alone.
    func plan(_ scope: Set<ServiceName>) -> [ReconcileAction] {
        var actions: [ReconcileAction] = []
        for name in scope.sorted() {
            let entry = services[name]
            guard entry?.problem == nil, entry?.activity != .removing else { continue }
            var desired = entry?.placed?.desired
            if let placed = entry?.placed, let actual = entry?.actual, !actual.isStopped,
                !placed.spec.unmetRequirements(placed.requirements).isEmpty
            {
                // While a requirement is lost, a running instance keeps what it runs: its policy decides.
                desired?.signature = actual.signature
            }
            if let action = Reconciliation.plan(desired: desired, actual: entry?.actual) {
                actions.append(action)
            }
        }
        return actions
    }

    /// The task requests to look at: those that changed, and on a full pass (or a change of the service) every
    /// request of a service placed here that has not been answered.
    func tasksToExamine(_ changes: PendingChanges, snapshots: [ServiceName: ServiceSnapshot]) -> Set<TaskKey> {
        var keys: Set<TaskKey> = []
        for (service, ids) in changes.tasks {
            for raw in ids {
                guard let id = try? TaskID(raw) else { continue }
                let progress = services[service]?.tasks[id]
                if progress != .done, progress != .running { keys.insert(TaskKey(service: service, id: id)) }
            }
        }
        let candidates = changes.everything ? Set(snapshots.keys) : changes.services
        for service in candidates where services[service]?.placed != nil {
            for raw in snapshots[service]?.tasks ?? [] {
                guard let id = try? TaskID(raw) else { continue }
                let progress = services[service]?.tasks[id]
                if progress == nil || progress == .waiting { keys.insert(TaskKey(service: service, id: id)) }
            }
        }
        return keys
    }

    /// What the rollout says about this machine's restart into the desired signature now.
    func decide(_ desired: DesiredInstance, _ view: RolloutView?) -> RolloutDecision {
        guard let view, let rollout = view.rollout, rollout.paces else { return .restart }
        guard view.placed.contains(where: { $0 < machine }) else { return .restart }
        return rollout.decide(
            machine: machine, into: desired.signature, placed: view.placed, records: view.records,
            registered: view.registered, state: view.state, now: view.now)
    }

    /// Records which restarts wait (following their peers only while they do), carries out the rest of the plan,
    /// and moves on to the tasks.
    mutating func gate(
        _ planned: [ReconcileAction], held: Set<ServiceName>, scope: Set<ServiceName>, tasks: Set<TaskKey>,
        changes: PendingChanges, in active: inout ActiveSession
    ) -> [AgentAction] {
        var actions: [AgentAction] = []
        for name in rolloutWaits.intersection(scope) where !held.contains(name) {
            setActivity(.idle, of: name)
        }
        for action in planned where held.contains(action.service) {
            guard case .restart(let desired, _) = action else { continue }
            setActivity(.awaitingRolloutTurn(desired.signature), of: desired.service)
            actions.append(.note(.rolloutTurnAwaited(desired.service, desired.signature)))
        }
        // Only while a restart waits does an agent care about its peers' records.
        var peerWatches: Set<WatchKey> = []
        if !active.followsWholeNamespace {
            let wanted = Set(rolloutWaits.map { WatchKey.subtree(paths.placements($0)) }).union(requirementWatches)
            let dropped = active.watches.filter { $0.subtree && $0.path.hasSuffix("/machines") && !wanted.contains($0) }
            if !dropped.isEmpty {
                active.watches.subtract(dropped)
                actions.append(.dropWatches(dropped))
            }
            peerWatches = wanted.subtracting(active.watches)
        }
        for action in planned where !held.contains(action.service) {
            actions += carryOut(action)
        }
        if peerWatches.isEmpty {
            actions += examineTasks(tasks, changes: changes, in: &active)
        } else {
            active.pass = .watchingPeers(changes, tasks: tasks, adding: peerWatches)
            // The dependents' requirements may have changed before the watches were set: they are read again too.
            actions.append(
                .addWatches(peerWatches, purpose: .rolloutPeers(rolloutWaits.union(dependents(of: nil)))))
        }
        return actions
    }

    /// The action that carries out one step of the plan.
    mutating func carryOut(_ action: ReconcileAction) -> [AgentAction] {
        switch action {
        case .stop(let name):
            setActivity(.removing, of: name)
            return [.remove(name)]
        case .start(let desired), .restart(let desired, _):
            guard let placed = services[desired.service]?.placed else { return unexpected("a plan to run \(action)") }
            var restart: ReconcileAction.RestartReason?
            if case .restart(_, let reason) = action { restart = reason }
            return [
                .launch(
                    InstanceLaunch(
                        desired: desired, restart: restart, spec: placed.spec, packages: placed.packages,
                        relations: placed.relations))
            ]
        }
    }

    /// Reads the task requests to look at, or ends the pass when there are none.
    func examineTasks(
        _ tasks: Set<TaskKey>, changes: PendingChanges, in active: inout ActiveSession
    ) -> [AgentAction] {
        guard !tasks.isEmpty else {
            active.pass = .idle
            return []
        }
        active.pass = .examiningTasks(changes)
        return [.readTasks(tasks.sorted())]
    }

    /// Sets a service's activity, keeping ``rolloutWaits`` in step.
    mutating func setActivity(_ activity: ServiceEntry.Activity, of name: ServiceName) {
        services[name, default: ServiceEntry()].activity = activity
        if case .awaitingRolloutTurn = activity {
            rolloutWaits.insert(name)
        } else {
            rolloutWaits.remove(name)
        }
        forgetIfUnneeded(name)
    }

    /// Drops a service's entry when it says nothing worth keeping.
    mutating func forgetIfUnneeded(_ name: ServiceName) {
        if services[name]?.isForgettable == true { services.removeValue(forKey: name) }
    }
}
