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
    /// Reads what a plan of a change to `name` starts from. A missing service is `.notFound`, unless `mayBeMissing`
    /// (a plan of adding it).
    public func planningView(_ name: ServiceName, mayBeMissing: Bool = false) async throws -> PlanningView {
        let history: ServiceHistory
        do {
            history = try await self.history(name)
        } catch let error as PopError where error.code == .notFound && mayBeMissing {
            return PlanningView(history: nil, state: ServiceState(spec: nil), running: [])
        }
        let placed = try await placements(name)
        let records = try await instances(name)
        let running = Set(records.filter { $0.value.state == .running }.keys)
        return PlanningView(
            history: history,
            state: ServiceState(
                spec: history.current.spec, placed: Set(placed.keys), rollout: try await rollout(name),
                count: try await schedulingPolicy(name)?.policy.count,
                historyLimit: history.settings.limit),
            running: running)
    }
}
