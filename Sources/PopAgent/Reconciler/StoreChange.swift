import PopState

/// What a change at one store path means to this machine's agent, so a burst of watch events can be coalesced into
/// one pass that reads only what changed.
public enum StoreChange: Hashable, Sendable {
    /// The services node itself was created or deleted: read everything.
    case everything
    /// A service was added or removed: list the services again.
    case serviceList
    /// This machine's assignment of the service appeared: it is placed here now.
    case assigned(ServiceName)
    /// This machine's assignment of the service went: it is no longer placed here.
    case unassigned(ServiceName)
    /// A service's spec node was created, set or deleted.
    case service(ServiceName)
    /// A service's recorded packages changed.
    case packages(ServiceName)
    /// This machine's placement of a service changed.
    case placement(ServiceName)
    /// This machine's instance record of a service was deleted (by the agent itself, or by someone else).
    case instanceRecord(ServiceName)
    /// A task request of a service, or one of its results, changed.
    case task(ServiceName, String)

    /// The service the change is about, if any.
    public var service: ServiceName? {
        switch self {
        case .everything, .serviceList: nil
        case .service(let name), .packages(let name), .placement(let name), .instanceRecord(let name),
            .task(let name, _), .assigned(let name), .unassigned(let name):
            name
        }
    }

    /// Classifies an event of the agent's watches (see ``SessionWatches``) at or below `servicesPath` (such as
    /// `/pop/services`) or this machine's `assignmentsPath` (such as `/pop/assignments/m1`) for `machine`; `nil`
    /// when it does not concern this machine (another machine's placement or instance, this machine's own record
    /// being written, a malformed name).
    public static func classify(
        _ event: NodeEvent, servicesPath: String, assignmentsPath: String, machine: MachineID
    ) -> StoreChange? {
        let path = event.path
        if path == assignmentsPath { return event.kind == .dataChanged ? nil : .serviceList }
        if path.hasPrefix(assignmentsPath + "/") {
            let rest = path.dropFirst(assignmentsPath.count + 1)
            guard !rest.contains("/"), let service = try? ServiceName(String(rest)) else { return nil }
            switch event.kind {
            // Placed here, or taken off: the event names the service, so the list is known without reading it.
            case .created: return .assigned(service)
            case .deleted: return .unassigned(service)
            case .dataChanged: return .service(service)  // announced: a task request, recorded packages
            case .childrenChanged: return nil
            }
        }
        if path == servicesPath {
            switch event.kind {
            case .childrenChanged: return .serviceList
            case .created, .deleted: return .everything
            case .dataChanged: return nil
            }
        }
        guard path.hasPrefix(servicesPath + "/") else { return nil }
        let parts = path.dropFirst(servicesPath.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        guard let first = parts.first, let service = try? ServiceName(String(first)) else { return nil }
        let children = event.kind == .childrenChanged
        switch parts.count {
        case 1:
            return children ? nil : .service(service)
        case 2:
            return parts[1] == "packages" && !children ? .packages(service) : nil
        case 3 where parts[1] == "machines":
            return parts[2] == machine.rawValue[...] && !children ? .placement(service) : nil
        case 4 where parts[1] == "machines":
            return parts[2] == machine.rawValue[...] && parts[3] == "instance" && event.kind == .deleted
                ? .instanceRecord(service) : nil
        case 3 where parts[1] == "tasks", 4 where parts[1] == "tasks":
            return .task(service, String(parts[2]))
        default:
            return nil
        }
    }
}

/// The changes gathered since the last reconcile pass, merged so that a burst costs one pass.
public struct PendingChanges: Hashable, Sendable {
    /// Whether everything must be read again (first pass, reconnect, new session).
    public var everything: Bool
    /// Whether the list of services must be read again (a service was added or removed).
    public var serviceList = false
    /// Services whose assignment to this machine appeared since the last pass, and did not go again.
    public var assigned: Set<ServiceName> = []
    /// Services whose assignment to this machine went since the last pass, and did not come back.
    public var unassigned: Set<ServiceName> = []
    /// Services whose spec, packages or placement changed.
    public var services: Set<ServiceName> = []
    /// Task requests that changed, by service.
    public var tasks: [ServiceName: Set<String>] = [:]

    /// Creates an empty set of changes (or one that asks for everything).
    public init(everything: Bool = false) {
        self.everything = everything
    }

    /// Whether nothing is pending.
    public var isEmpty: Bool {
        !everything && !serviceList && services.isEmpty && tasks.isEmpty && assigned.isEmpty && unassigned.isEmpty
    }

    /// The services placed on this machine after these changes, when the last list (`listed`) and the assignments
    /// that came and went say it without reading the list again; nil when it must be read.
    public func knownServices(after listed: Set<ServiceName>) -> Set<ServiceName>? {
        guard !everything, !serviceList, !assigned.isEmpty || !unassigned.isEmpty else { return nil }
        return listed.union(assigned).subtracting(unassigned)
    }

    /// Adds one change.
    public mutating func add(_ change: StoreChange) {
        switch change {
        case .everything: everything = true
        case .serviceList: serviceList = true
        case .assigned(let name):
            assigned.insert(name)
            unassigned.remove(name)
            services.insert(name)
        case .unassigned(let name):
            unassigned.insert(name)
            assigned.remove(name)
            services.insert(name)
        case .service(let name), .packages(let name), .placement(let name): services.insert(name)
        case .instanceRecord:
            break  // The core writes the record again when someone else deleted it; no pass is needed.
        case .task(let name, let task): tasks[name, default: []].insert(task)
        }
    }

    /// Adds another set of changes (those of a pass that failed, older than these): assignments that came or went
    /// then are not ordered with these, so the list is read again.
    public mutating func merge(_ other: PendingChanges) {
        everything = everything || other.everything
        serviceList = serviceList || other.serviceList || !other.assigned.isEmpty || !other.unassigned.isEmpty
        services.formUnion(other.services)
        tasks.merge(other.tasks) { $0.union($1) }
    }
}
