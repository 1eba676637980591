/// What a ``ChangePlan`` starts from: a service's desired state as stored, its history, and where it runs now.
public struct PlanningView: Hashable, Sendable {
    /// The spec with its history; nil when the service does not exist.
    public var history: ServiceHistory?
    /// The desired state as stored.
    public var state: ServiceState
    /// The machines whose instance of the service is running now.
    public var running: Set<MachineID>

    /// The service's version; nil when it does not exist.
    public var version: Int32? { history?.version }

    /// The plan of going from the stored state to `after`.
    public func plan(_ name: ServiceName, after: ServiceState) -> ChangePlan {
        ChangePlan(service: name, version: version, before: state, after: after, running: running)
    }
}

extension PopNamespace {
    /// Reads what a plan of a change to `name` starts from, in two round trips (one without `full`, which reads only
    /// the spec and its history, for a command that does not print a plan). A missing service is `.notFound`, unless
    /// `mayBeMissing` (a plan of adding it).
    public func planningView(
        _ name: ServiceName, mayBeMissing: Bool = false, full: Bool = true
    ) async throws -> PlanningView {
        try await checkLayout()
        let extra: [ReadOperation] = full
            ? [.get(paths.rollout(name)), .get(paths.scheduling(name)), .children(paths.placements(name))] : []
        let results = try await store.read(historyReads(name) + extra)
        let history: ServiceHistory
        do {
            history = try await self.history(name, from: results)
        } catch let error as PopError where error.code == .notFound && mayBeMissing {
            return PlanningView(history: nil, state: ServiceState(spec: nil), running: [])
        }
        var state = ServiceState(spec: history.current.spec, historyLimit: history.settings.limit)
        guard full else { return PlanningView(history: history, state: state, running: []) }
        state.rollout = try results[3].nodeIfExists().map { (node) throws(PopError) in try decode(Rollout.self, node) }
        state.count = try results[4].nodeIfExists().map { (node) throws(PopError) in
            try decode(SchedulingPolicy.self, node).count
        }
        let parent = paths.placements(name)
        let placed = try (results[5].childrenIfExists() ?? []).map { (child) throws(PopError) in
            try parseName(child, under: parent, MachineID.init)
        }
        state.placed = Set(placed)
        let records = try await store.read(placed.map { .get(paths.instance(name, $0)) })
        var running: Set<MachineID> = []
        for (machine, result) in zip(placed, records) {
            guard let node = try result.nodeIfExists() else { continue }
            if try decode(InstanceRecord.self, node).state == .running { running.insert(machine) }
        }
        return PlanningView(history: history, state: state, running: running)
    }
}
