import Foundation

/// What the scheduler decides from: every registration, every machine's facts, the names of the services, and the
/// services deployed by count with their placements, and the instance records of those whose drain waits for a
/// replacement to run (``awaitsReplacement(_:)``). Everything in it is read from the store, so a new scheduler decides
/// exactly as the last one would have.
public struct SchedulingState: Hashable, Sendable {
    /// A service deployed by count.
    public struct Service: Hashable, Sendable {
        /// The service.
        public var name: ServiceName
        /// How many instances, and where.
        public var policy: SchedulingPolicy
        /// The desired configuration's signature.
        public var signature: ConfigSignature
        /// Its placements, by machine.
        public var placements: [MachineID: Placement]
        /// The instance records its machines publish.
        public var instances: [MachineID: InstanceRecord]

        /// Creates a service's part of the state.
        public init(
            name: ServiceName, policy: SchedulingPolicy, signature: ConfigSignature,
            placements: [MachineID: Placement], instances: [MachineID: InstanceRecord] = [:]
        ) {
            self.name = name
            self.policy = policy
            self.signature = signature
            self.placements = placements
            self.instances = instances
        }

        /// The machines whose instance runs the current configuration.
        public var running: Set<MachineID> {
            Set(instances.filter { $0.value.state == .running && $0.value.signature == signature }.keys)
        }
    }

    /// The machines whose agents are registered.
    public var registered: Set<MachineID>
    /// Every machine's facts (labels, drained, absent since).
    public var facts: [MachineID: MachineFacts]
    /// The services deployed by count.
    public var services: [Service]
    /// Every service of the namespace, deployed by count or pinned (the scheduler follows each one's policy node).
    public var names: Set<ServiceName>
    /// How many placements of any service (pinned or by count) each machine holds.
    public var load: [MachineID: Int]

    /// Creates a state; `names` defaults to the services deployed by count.
    public init(
        registered: Set<MachineID>, facts: [MachineID: MachineFacts] = [:], services: [Service],
        names: Set<ServiceName>? = nil, load: [MachineID: Int] = [:]
    ) {
        self.registered = registered
        self.facts = facts
        self.services = services
        self.names = names ?? Set(services.map(\.name))
        self.load = load
    }

    /// The state `pop status`'s snapshot holds.
    public init(_ snapshot: StatusSnapshot) {
        registered = Set(snapshot.machines.map(\.id))
        facts = snapshot.facts.mapValues(\.facts)
        var load: [MachineID: Int] = [:]
        var services: [Service] = []
        for status in snapshot.services {
            for placement in status.placements { load[placement.machine, default: 0] += 1 }
            guard let policy = status.scheduling else { continue }
            services.append(
                Service(
                    name: status.spec.name, policy: policy, signature: status.signature,
                    placements: Dictionary(status.placements.map { ($0.machine, $0.placement) }) { first, _ in first },
                    instances: Dictionary(status.placements.compactMap { placement in
                        placement.instance.map { (placement.machine, $0) }
                    }) { first, _ in first }))
        }
        self.services = services
        names = Set(snapshot.services.map(\.spec.name))
        self.load = load
    }

    /// Whether one of the service's placements made by count is on a registered machine its policy no longer admits
    /// (drained, relabelled): the placement goes only once `count` instances run elsewhere, so the scheduler reads
    /// and follows this service's instance records. Other services' instance records do not change its plan.
    public func awaitsReplacement(_ service: Service) -> Bool {
        service.placements.contains { machine, placement in
            placement.isScheduled && registered.contains(machine) && !service.policy.admits(facts[machine])
        }
    }

    /// The registered machines a policy admits.
    public func eligible(_ policy: SchedulingPolicy) -> [MachineID] {
        registered.filter { policy.admits(facts[$0]) }.sorted()
    }
}
