import Foundation

/// When a required service counts as available to its dependents.
public enum RequirementCondition: String, Hashable, Sendable, Codable, CaseIterable {
    /// A process is running (the instance is `starting` or `running`).
    case started
    /// Running and healthy: the instance is `running`, which an instance with a health check only reaches once its
    /// check passed.
    case healthy
}

/// What a running dependent does when a requirement stops meeting its condition.
public enum RequirementPolicy: String, Hashable, Sendable, Codable, CaseIterable {
    /// Keep running.
    case wait
    /// Stop until the requirement recovers, then start again.
    case stop
    /// Keep running, and restart once the requirement recovers.
    case restart
}

/// A named requirement slot a template declares (`requires: {db: {interface: redis, condition: healthy}}`), as a
/// Juju charm declares an endpoint.
public struct TemplateRequirement: Hashable, Sendable, Codable {
    /// The interface the bound service's template must provide; `nil` accepts any service.
    public var interface: String?
    /// When an instance of the bound service counts as available.
    public var condition: RequirementCondition
    /// What a running dependent does when the requirement is lost.
    public var policy: RequirementPolicy
    /// How long a lost requirement must stay lost (and a recovered one stay recovered) before `stop` or `restart`
    /// acts on it, so a flapping requirement does not cause a restart storm.
    public var debounceMilliseconds: Int

    /// The debounce when a template does not name one.
    public static let defaultDebounceMilliseconds = 5_000

    /// Creates a requirement.
    public init(
        interface: String? = nil, condition: RequirementCondition = .healthy, policy: RequirementPolicy = .wait,
        debounceMilliseconds: Int = TemplateRequirement.defaultDebounceMilliseconds
    ) {
        self.interface = interface
        self.condition = condition
        self.policy = policy
        self.debounceMilliseconds = debounceMilliseconds
    }
}

/// What one required service looks like across the fleet, as far as its dependents care.
public struct RequiredServiceView: Hashable, Sendable {
    /// The required service's spec; `nil` when it does not exist (or cannot be read).
    public var spec: ServiceSpec?
    /// The instance records of its placements, by machine.
    public var records: [MachineID: InstanceRecord]
    /// The registered machines among its placements, with their records.
    public var machines: [MachineID: MachineRecord]

    /// Creates a view.
    public init(
        spec: ServiceSpec? = nil, records: [MachineID: InstanceRecord] = [:], machines: [MachineID: MachineRecord] = [:]
    ) {
        self.spec = spec
        self.records = records
        self.machines = machines
    }

    /// The machines whose instance meets `condition`: registered, and running the service's current signature
    /// (`started` also takes one that is starting).
    public func machinesMeeting(_ condition: RequirementCondition) -> [MachineID] {
        // A required service that uses relation data itself runs its spec's signature combined with that data, which
        // this view cannot work out: any signature counts then.
        let current = spec.flatMap { $0.template.relationReferences.isEmpty ? $0.signature : nil }
        return records.keys.sorted().filter { machine in
            guard let record = records[machine], machines[machine] != nil else { return false }
            if let current, record.signature != current { return false }
            switch condition {
            case .started: return record.state == .running || record.state == .starting
            case .healthy: return record.state == .running
            }
        }
    }

    /// Whether at least one instance meets `condition`.
    public func meets(_ condition: RequirementCondition) -> Bool {
        !machinesMeeting(condition).isEmpty
    }
}

extension ServiceSpec {
    /// The service each of its template's requirement slots is bound to (a slot not bound explicitly is bound to the
    /// service of the same name).
    public var boundRequirements: [(slot: String, requirement: TemplateRequirement, service: ServiceName)] {
        (template.requires ?? [:]).keys.sorted().compactMap { slot in
            let bound = requires?[slot] ?? slot
            guard let service = try? ServiceName(bound) else { return nil }
            return (slot, template.requires![slot]!, service)
        }
    }

    /// The services this one requires.
    public var requiredServices: Set<ServiceName> {
        Set(boundRequirements.map(\.service))
    }

    /// The slots whose requirement is not met, with why (`db: not healthy`), given the views of the required
    /// services; empty when every requirement is met.
    public func unmetRequirements(_ views: [ServiceName: RequiredServiceView]) -> [String: String] {
        var unmet: [String: String] = [:]
        for (slot, requirement, service) in boundRequirements {
            guard let view = views[service], view.spec != nil else {
                unmet[slot] = "service \(service) missing"
                continue
            }
            if !view.meets(requirement.condition) {
                unmet[slot] = requirement.condition == .healthy ? "not healthy" : "not started"
            }
        }
        return unmet
    }

    /// Binds the template's slots: `given` (slot → service) over the bindings already made, checking that every
    /// slot named exists. Slots bound to the service of their own name are not stored.
    public mutating func bindRequirements(_ given: [String: String]) throws(PopError) {
        let slots = template.requires ?? [:]
        var bindings = requires ?? [:]
        for (slot, service) in given.sorted(by: { $0.key < $1.key }) {
            guard slots[slot] != nil else {
                let known = slots.keys.sorted()
                throw PopError(
                    .invalidInput,
                    "The template '\(template.name)' has no requirement slot '\(slot)'"
                        + (known.isEmpty ? "; it requires nothing." : "; its slots are \(known.joined(separator: ", "))."),
                    hint: "`pop describe \(template.name)` lists its requirements.")
            }
            _ = try ServiceName(service)
            if service == slot { bindings.removeValue(forKey: slot) } else { bindings[slot] = service }
        }
        requires = bindings.isEmpty ? nil : bindings
    }

    /// Checks the bindings against the other services (`specs`: every service's spec, by name, this one's excluded
    /// or replaced): each bound service must exist (`.notFound`) and provide the slot's interface (`.invalidInput`),
    /// and the requirements must not form a cycle (`.invalidInput`, naming it).
    public func checkRequirements(against specs: [ServiceName: ServiceSpec]) throws(PopError) {
        for (slot, requirement, service) in boundRequirements {
            if service == name {
                throw PopError(
                    .invalidInput, "The requirements form a cycle: \(name) -> \(name) (slot '\(slot)').",
                    hint: "Bind the slot to another service with --requires \(slot)=SERVICE.")
            }
            guard let other = specs[service] else {
                throw PopError(
                    .notFound,
                    "The requirement '\(slot)' of \(name) is bound to '\(service)', but no service '\(service)' exists"
                        + (requirement.interface.map { "; expected a service providing '\($0)'." } ?? "."),
                    hint: "Add it first, or bind the slot to another service with --requires \(slot)=SERVICE.")
            }
            if let interface = requirement.interface, !(other.template.provides ?? []).contains(interface) {
                let provides = other.template.provides ?? []
                throw PopError(
                    .invalidInput,
                    "The requirement '\(slot)' of \(name) expects a service providing '\(interface)', but '\(service)' "
                        + "(template \(other.template.name)) provides "
                        + (provides.isEmpty ? "nothing." : provides.joined(separator: ", ") + "."),
                    hint: "Bind the slot to a service whose template provides '\(interface)' with --requires \(slot)=SERVICE.")
            }
        }
        try checkRelationData(against: specs)
        var all = specs
        all[name] = self
        if let cycle = Self.requirementCycle(from: name, in: all) {
            throw PopError(
                .invalidInput, "The requirements form a cycle: \(cycle.map(\.rawValue).joined(separator: " -> ")).",
                hint: "Bind one of these slots to another service with --requires SLOT=SERVICE.")
        }
    }

    /// A cycle of requirements through `start`, as the path `start -> ... -> start`, if there is one.
    static func requirementCycle(from start: ServiceName, in specs: [ServiceName: ServiceSpec]) -> [ServiceName]? {
        var path: [ServiceName] = [start]
        var visited: Set<ServiceName> = []
        func visit(_ node: ServiceName) -> [ServiceName]? {
            for next in (specs[node]?.requiredServices ?? []).sorted() {
                if next == start { return path + [start] }
                guard !visited.contains(next) else { continue }
                visited.insert(next)
                path.append(next)
                if let found = visit(next) { return found }
                path.removeLast()
            }
            return nil
        }
        return visit(start)
    }

    /// The services among `specs` that require `service`, with the slot, sorted.
    public static func dependents(
        of service: ServiceName, in specs: [ServiceName: ServiceSpec]
    ) -> [(service: ServiceName, slot: String)] {
        specs.keys.sorted().flatMap { name in
            specs[name]!.boundRequirements.filter { $0.service == service && name != service }.map { (name, $0.slot) }
        }
    }
}

/// One use of relation data in a template: `{requires.SLOT.KEY}`.
public struct RelationReference: Hashable, Sendable, Comparable {
    /// The requirement slot.
    public var slot: String
    /// `addresses`, `port`, or a shared option of the bound service.
    public var key: String

    /// The placeholder's name, `requires.SLOT.KEY`.
    public var placeholder: String { "requires.\(slot).\(key)" }

    /// The prefix of every relation placeholder.
    public static let prefix = "requires."

    /// Parses a placeholder name; `nil` when it is not relation data.
    public init?(_ name: String) {
        guard name.hasPrefix(Self.prefix) else { return nil }
        let parts = name.dropFirst(Self.prefix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.slot = String(parts[0])
        self.key = String(parts[1])
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.slot, lhs.key) < (rhs.slot, rhs.key) }
}

extension ResolvedTemplate {
    /// Every piece of relation data the template uses, in its command, setup steps, environment and health check.
    public var relationReferences: Set<RelationReference> {
        var texts = command + environment.values
        for step in setup { texts += step.command + step.environment.values }
        if let health { texts += [health.port, health.url].compactMap { $0 } }
        var found: Set<RelationReference> = []
        for text in texts {
            for reference in (try? Placeholders.references(in: text, wholeElement: true)) ?? [] {
                if let name = reference.name, let relation = RelationReference(name) { found.insert(relation) }
            }
        }
        return found
    }
}

extension ServiceSpec {
    /// The relation data the template uses.
    public func relationReferences() -> Set<RelationReference> {
        template.relationReferences
    }

    /// The values of the relation data the template uses, from the required services as they are across the fleet:
    /// `addresses` lists `host:port` of each instance running and healthy (the machine's first published address and
    /// the bound service's `port` option), `port` is that option, and any other key a `shared: true` option.
    public func relationValues(_ views: [ServiceName: RequiredServiceView]) -> [String: String] {
        let bound = Dictionary(boundRequirements.map { ($0.slot, $0.service) }, uniquingKeysWith: { first, _ in first })
        var values: [String: String] = [:]
        for reference in relationReferences() {
            guard let service = bound[reference.slot], let view = views[service], let spec = view.spec else {
                values[reference.placeholder] = ""
                continue
            }
            let port = spec.options["port"]?.description ?? ""
            switch reference.key {
            case "addresses":
                values[reference.placeholder] = view.machinesMeeting(.healthy).compactMap { machine -> String? in
                    guard let address = view.machines[machine]?.addresses.first else { return nil }
                    let host = address.contains(":") ? "[\(address)]" : address
                    return port.isEmpty ? host : "\(host):\(port)"
                }.joined(separator: ",")
            case "port":
                values[reference.placeholder] = port
            default:
                let shared = spec.template.options.first { $0.name == reference.key && $0.shared }
                values[reference.placeholder] = shared.flatMap { spec.options[$0.name]?.description } ?? ""
            }
        }
        return values
    }

    /// Checks that each piece of relation data names a slot of the template and, for a key other than `addresses`
    /// and `port`, an option the bound service's template marks `shared: true`.
    func checkRelationData(against specs: [ServiceName: ServiceSpec]) throws(PopError) {
        let bound = Dictionary(boundRequirements.map { ($0.slot, $0.service) }, uniquingKeysWith: { first, _ in first })
        for reference in relationReferences().sorted() where reference.key != "addresses" && reference.key != "port" {
            guard let service = bound[reference.slot], let other = specs[service] else { continue }
            guard other.template.options.contains(where: { $0.name == reference.key && $0.shared }) else {
                let shared = other.template.options.filter(\.shared).map(\.name)
                throw PopError(
                    .invalidInput,
                    "{\(reference.placeholder)} of \(name) names the option '\(reference.key)' of \(service) (template "
                        + "\(other.template.name)), which it does not share; shared: "
                        + (shared.isEmpty ? "none" : shared.joined(separator: ", ")) + ".",
                    hint: "Only options marked `shared: true` are relation data; secrets are never shared unless marked.")
            }
        }
    }
}

extension ConfigSignature {
    /// The signature of an instance of a spec with this signature that runs with `relations`: the spec's own when the
    /// template uses no relation data, otherwise the SHA-1 of the spec's signature and every value, so that an
    /// instance whose relation data changes gets a new signature (and restarts under its rollout policy).
    public func with(relations: [String: String]) -> ConfigSignature {
        guard !relations.isEmpty else { return self }
        let lines = [hex] + relations.keys.sorted().map { "\($0)=\(relations[$0]!)" }
        return ConfigSignature(of: Array(lines.joined(separator: "\n").utf8))
    }
}

extension StatusSnapshot {
    /// The services `spec` requires, as this snapshot has them.
    public func requiredServices(of spec: ServiceSpec) -> [ServiceName: RequiredServiceView] {
        let registered = Dictionary(machines.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var views: [ServiceName: RequiredServiceView] = [:]
        for name in spec.requiredServices {
            guard let status = services.first(where: { $0.spec.name == name }) else {
                views[name] = RequiredServiceView()
                continue
            }
            var view = RequiredServiceView(spec: status.spec)
            for placement in status.placements {
                view.records[placement.machine] = placement.instance
                view.machines[placement.machine] = registered[placement.machine]
            }
            views[name] = view
        }
        return views
    }

    /// The signature an instance of `service` runs when it is current: its spec's, combined with its relation data.
    public func instanceSignature(of service: ServiceStatus) -> ConfigSignature {
        guard service.spec.template.requires != nil else { return service.signature }
        return service.signature.with(relations: service.spec.relationValues(requiredServices(of: service.spec)))
    }
}
