extension ChangePlan {
    /// An instance of another service that would restart because its relation data would change.
    public struct DependentRestart: Hashable, Sendable, Codable {
        /// The dependent service.
        public var service: String
        /// The machine of its instance.
        public var machine: String
        /// Which relation data would change: `relation data changed: {requires.db.port}`.
        public var reason: String

        /// Creates a dependent's restart.
        public init(service: String, machine: String, reason: String) {
            self.service = service
            self.machine = machine
            self.reason = reason
        }
    }
}

extension StatusSnapshot {
    /// The instances of other services whose relation data would change if `service` went to `after`: its instances
    /// on machines it stays placed on are taken to keep their state and run the new spec, those it leaves to be gone.
    /// Instances starting on new machines are not counted: they change the data once they are healthy. A dependent
    /// whose requirements would no longer be met is not listed: it keeps running what it runs and follows its policy.
    public func dependentRestarts(of service: ServiceName, after: ServiceState) -> [ChangePlan.DependentRestart] {
        var changed = self
        if let index = changed.services.firstIndex(where: { $0.spec.name == service }) {
            if let spec = after.spec {
                var status = changed.services[index]
                let wasCurrent = status.signature
                status.spec = spec
                status.signature = spec.signature
                status.placements = status.placements.filter { after.placed.contains($0.machine) }.map { placement in
                    var placement = placement
                    if placement.instance?.signature == wasCurrent { placement.instance?.signature = spec.signature }
                    return placement
                }
                changed.services[index] = status
            } else {
                changed.services.remove(at: index)
            }
        }
        var restarts: [ChangePlan.DependentRestart] = []
        for dependent in services.sorted(by: { $0.spec.name < $1.spec.name })
        where dependent.spec.name != service && dependent.spec.requiredServices.contains(service) {
            let views = changed.requiredServices(of: dependent.spec)
            guard dependent.spec.unmetRequirements(views).isEmpty else { continue }
            let before = dependent.spec.relationValues(requiredServices(of: dependent.spec))
            let now = dependent.spec.relationValues(views)
            let keys = before.keys.sorted().filter { before[$0] != now[$0] }
            guard !keys.isEmpty else { continue }
            let reason = "relation data changed: " + keys.map { "{\($0)}" }.joined(separator: ", ")
            for placement in dependent.placements.sorted(by: { $0.machine < $1.machine }) {
                restarts.append(
                    ChangePlan.DependentRestart(
                        service: dependent.spec.name.rawValue, machine: placement.machine.rawValue, reason: reason))
            }
        }
        return restarts
    }
}
