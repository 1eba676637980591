import Foundation
import PopState

/// A task request of a service.
struct TaskKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The service the request was made for.
    var service: ServiceName
    /// The request's id.
    var id: TaskID

    static func < (lhs: TaskKey, rhs: TaskKey) -> Bool { (lhs.service, lhs.id) < (rhs.service, rhs.id) }

    var description: String { "\(service)/\(id)" }
}

/// Everything the agent knows about one service: what the store asks of this machine, what the supervisor runs, the
/// slow step in flight, and the service's task requests. One value per service, so that what belongs together cannot
/// disagree.
@dynamicMemberLookup
struct ServiceEntry: Hashable, Sendable {
    /// What the store asks of this machine for a service.
    enum Intent: Hashable, Sendable {
        /// The service is not in the store (or has not been read yet).
        case absent
        /// The service exists and is not placed here. Its spec is not kept: only placed services need one.
        case notPlaced
        /// The service is placed here and its spec can be used. Kept in a box of its own (`indirect`), shared by
        /// the entry's copies.
        indirect case placed(PlacedService)
        /// The service is placed here, but its spec or its placement cannot be read; its instance is left as it is.
        /// The signature is the readable spec's, when only the placement is unreadable.
        case unusable(Problem, signature: ConfigSignature?)
    }

    /// A slow step that keeps the planner away from the service meanwhile.
    enum Activity: Hashable, Sendable {
        /// Nothing in flight.
        case idle
        /// The instance is being stopped and forgotten (undeploy, remove); it is looked at again when that is done.
        case removing
        /// A configuration restart into this signature waits for its turn in the service's rollout.
        case awaitingRolloutTurn(ConfigSignature)
    }

    /// Where a task request stands on this machine.
    enum TaskProgress: Hashable, Sendable {
        /// Waiting for its turn (maxParallel) or for the instance to finish installing.
        case waiting
        /// Running here now (its final result, and any packages it records, are still to come).
        case running
        /// Finished, answered, or not for this machine: never looked at again.
        case done
    }

    /// The entry's fields, in one box copied on write (``CopyOnWriteBox``) and reached as the entry's own
    /// (`entry.intent`): the agent's table of services then holds a pointer per slot, and half of its slots may be
    /// empty.
    struct Fields: Hashable, Sendable {
        /// What the store asks of this machine.
        var intent: Intent = .absent
        /// What the supervisor runs for the service, when it runs something.
        var supervision: Supervision?
        /// The slow step in flight.
        var activity: Activity = .idle
        /// The service's task requests seen so far, by id.
        var tasks: [TaskID: TaskProgress] = [:]
        /// How its requirements stand, for the start gate and the policies.
        var requirements = RequirementTracking()
    }

    private var fields = CopyOnWriteBox(Fields())

    subscript<Value>(dynamicMember field: WritableKeyPath<Fields, Value>) -> Value {
        get { fields.value[keyPath: field] }
        _modify { yield &fields.value[keyPath: field] }
    }

    /// The spec and placement, when the service is placed here with a usable spec.
    var placed: PlacedService? {
        if case .placed(let placed) = fields.value.intent { return placed }
        return nil
    }

    /// Why the service's instance cannot be managed now, if it cannot: its spec or placement is unreadable, or its
    /// spec cannot be turned into a command.
    var problem: String? {
        switch fields.value.intent {
        case .absent, .notPlaced: nil
        case .placed(let placed): placed.launchProblem?.message
        case .unusable(let problem, _): problem.message
        }
    }

    /// What the planner compares with the desired state, once the supervisor reported the instance.
    var actual: ActualInstance? {
        guard let supervision = fields.value.supervision, let status = supervision.status else { return nil }
        return ActualInstance(
            service: status.name, signature: status.signature, restartGeneration: supervision.generation,
            isStopped: status.state == .stopped)
    }

    /// Whether the entry says nothing worth keeping: the service is gone, nothing runs, nothing is in flight.
    var isForgettable: Bool {
        let fields = fields.value
        return fields.intent == .absent && fields.supervision == nil && fields.activity == .idle
            && !fields.tasks.values.contains(.running)
    }
}

/// A service placed on this machine with a spec it can run.
struct PlacedService: Hashable, Sendable {
    /// The spec (its template shared with the other specs that use it).
    var spec: ServiceSpec
    /// The SHA-1 of the spec node's data.
    var signature: ConfigSignature
    /// The packages recorded with the service.
    var packages: [String]
    /// The placement's restart generation.
    var restartGeneration: Int
    /// Why the instance could not be started with this spec (an unknown placeholder, a bad stop signal, its folder
    /// could not be written), if it could not; cleared when the service is read again.
    var launchProblem: Problem? = nil
    /// The services its template requires, as they were last read across the fleet.
    var requirements: [ServiceName: RequiredServiceView] = [:]

    /// The relation data an instance starts with now.
    var relations: [String: String] {
        spec.template.requires == nil ? [:] : spec.relationValues(requirements)
    }

    /// What the planner compares with the actual instance: the spec's signature combined with the relation data.
    var desired: DesiredInstance {
        DesiredInstance(
            service: spec.name, signature: signature.with(relations: relations), restartGeneration: restartGeneration)
    }
}

/// Why a service placed here cannot be used, and since when.
struct Problem: Hashable, Sendable {
    /// The message a person reads in the instance record's `lastError`.
    var message: String
    /// When the agent first read it.
    var since: Date
}

/// What the supervisor runs for a service.
struct Supervision: Hashable, Sendable {
    /// The supervisor's latest report; `nil` between asking it to start an instance and its first report.
    var status: InstanceStatus?
    /// The restart generation the instance was started at.
    var generation: Int
}
