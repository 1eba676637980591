/// Where each of pop's records lives under a namespace prefix (see docs/state.md).
public struct NamespacePaths: Hashable, Sendable {
    /// The namespace root, such as `/pop`. Its data holds the layout version.
    public let root: String

    /// Paths under `root`, which must be a valid absolute store path.
    public init(root: String) throws(PopError) {
        try NodePath.validate(root)
        self.root = root
    }

    private func under(_ relative: String) -> String { root == "/" ? "/" + relative : root + "/" + relative }

    /// `<root>/machines`: one ephemeral node per running agent.
    public var machines: String { under("machines") }
    /// `<root>/machines/<id>`: the machine's ``MachineRecord``.
    public func machine(_ id: MachineID) -> String { machines + "/" + id.rawValue }
    /// `<root>/endpoint-key`: the ``EndpointKey`` that opens the agents' endpoints (docs/observability.md).
    public var endpointKey: String { under("endpoint-key") }
    /// `<root>/facts`: one persistent node per machine that has labels, is drained or went missing.
    public var facts: String { under("facts") }
    /// `<root>/facts/<id>`: the machine's ``MachineFacts``.
    public func facts(_ id: MachineID) -> String { facts + "/" + id.rawValue }
    /// `<root>/election`: the scheduler election's ephemeral sequential candidates (`candidate-<seq>`).
    public var election: String { under("election") }
    /// `<root>/assignments`: per machine, what is placed on it (see ``Assignment``).
    public var assignments: String { under("assignments") }
    /// `<root>/assignments/<id>`: the services placed on the machine; its agent follows this subtree.
    public func assignments(_ machine: MachineID) -> String { assignments + "/" + machine.rawValue }
    /// `<root>/assignments/<id>/<name>`: the ``Assignment`` of a service placed on the machine.
    public func assignment(_ machine: MachineID, _ name: ServiceName) -> String {
        assignments(machine) + "/" + name.rawValue
    }
    /// `<root>/services`.
    public var services: String { under("services") }
    /// `<root>/services/<name>`: the ``ServiceSpec``; its node version is the configuration version.
    public func service(_ name: ServiceName) -> String { services + "/" + name.rawValue }
    /// `<root>/services/<name>/packages`: packages added by `pop run NAME install`.
    public func packages(_ name: ServiceName) -> String { service(name) + "/packages" }
    /// `<root>/services/<name>/rollout`: the service's ``Rollout`` (optional; not part of its signature).
    public func rollout(_ name: ServiceName) -> String { service(name) + "/rollout" }
    /// `<root>/services/<name>/history`: the service's ``HistorySettings``, with one child per kept spec.
    public func history(_ name: ServiceName) -> String { service(name) + "/history" }
    /// `<root>/services/<name>/history/<version>`: a ``HistoryEntry``, named by its version as `%010d`.
    public func historyEntry(_ name: ServiceName, _ version: Int32) -> String {
        history(name) + "/" + HistoryEntry.nodeName(version)
    }
    /// `<root>/services/<name>/rollout-state`: the ``RolloutState`` of the service's canary rollout in progress or last
    /// ended.
    public func rolloutState(_ name: ServiceName) -> String { service(name) + "/rollout-state" }
    /// `<root>/services/<name>/scheduling`: the service's ``SchedulingPolicy`` when it is deployed by count.
    public func scheduling(_ name: ServiceName) -> String { service(name) + "/scheduling" }
    /// `<root>/services/<name>/machines`: the service's placements.
    public func placements(_ name: ServiceName) -> String { service(name) + "/machines" }
    /// `<root>/services/<name>/machines/<id>`: a ``Placement``.
    public func placement(_ name: ServiceName, _ machine: MachineID) -> String {
        placements(name) + "/" + machine.rawValue
    }
    /// `<root>/services/<name>/machines/<id>/instance`: the agent's ephemeral ``InstanceRecord``.
    public func instance(_ name: ServiceName, _ machine: MachineID) -> String {
        placement(name, machine) + "/instance"
    }
    /// `<root>/services/<name>/tasks`.
    public func tasks(_ name: ServiceName) -> String { service(name) + "/tasks" }
    /// `<root>/services/<name>/tasks/<task-id>`: a ``TaskRequest``.
    public func task(_ name: ServiceName, _ id: TaskID) -> String { tasks(name) + "/" + id.rawValue }
    /// `<root>/services/<name>/tasks/<task-id>/<machine-id>`: that machine's ``TaskResult``.
    public func taskResult(_ name: ServiceName, _ id: TaskID, _ machine: MachineID) -> String {
        task(name, id) + "/" + machine.rawValue
    }
}
