import Foundation
import PopState

/// What the dashboard's grid shows: every machine, every service, and one cell per instance.
///
/// Built from a ``StatusSnapshot`` through ``StatusReport`` (the shape of `pop status --json`), so that the grid
/// and `pop status` never disagree about an instance's state. It is sent to the page as JSON with dates as epoch
/// milliseconds. It holds no option values, so no secret can reach the grid or its event stream.
public struct FleetModel: Codable, Hashable, Sendable {
    /// A machine: a column of the grid.
    public struct Machine: Codable, Hashable, Sendable {
        /// The machine's id.
        public var id: String
        /// Its host name, while its agent is registered.
        public var hostname: String?
        /// Whether its agent is registered.
        public var up: Bool
        /// Its addresses, while its agent is registered.
        public var addresses: [String]
        /// Its agent's version, while registered.
        public var agentVersion: String?
        /// When its agent started, while registered.
        public var started: Date?
    }

    /// One cell: a service's instance on a machine.
    public struct Instance: Codable, Hashable, Sendable {
        /// The machine.
        public var machine: String
        /// An ``InstanceState`` raw value, `pending` (placed, nothing published yet) or `unknown` (machine down).
        public var state: String
        /// The process id.
        public var pid: Int32?
        /// When the process started.
        public var started: Date?
        /// Since when the instance is in its state.
        public var since: Date?
        /// Unexpected exits since the last deliberate (re)start.
        public var restarts: Int?
        /// The first 8 digits of the signature it runs.
        public var signature: String?
        /// Whether it runs the service's current signature (false marks an old one).
        public var current: Bool
        /// The last error, if any.
        public var lastError: String?
        /// CPU use in percent of one core since the previous sample, as its agent measured it; nil until sampled, or
        /// when its agent did not answer.
        public var cpuPercent: Double?
        /// Resident memory of the instance's process group in bytes; nil until sampled, or when its agent did not answer.
        public var memoryBytes: Int64?
    }

    /// One service: a row of the grid.
    public struct Service: Codable, Hashable, Sendable {
        /// The service's name.
        public var name: String
        /// The template it was built from.
        public var template: String
        /// The first 8 digits of its current signature.
        public var signature: String
        /// Its configuration version.
        public var version: Int32
        /// Its instances, by machine id.
        public var instances: [Instance]
        /// How many instances should run, when it is deployed by count; nil when it is pinned to machines.
        public var desired: Int?
        /// How many of its instances run its current configuration.
        public var running: Int
        /// Why fewer than `desired` are placed, such as "2 of 3: only 2 eligible machines".
        public var reason: String?
    }

    /// The store, as every command names it.
    public var store: String
    /// The machines: every registered one and every one a service is placed on, by id.
    public var machines: [Machine]
    /// The services, by name.
    public var services: [Service]
    /// Records that could not be read, each naming its node.
    public var problems: [String]

    /// The model of `snapshot`.
    public init(snapshot: StatusSnapshot) {
        let report = StatusReport(snapshot: snapshot, only: nil)
        store = report.store
        let registered = Dictionary(snapshot.machines.map { ($0.id.rawValue, $0) }, uniquingKeysWith: { first, _ in first })
        let placed = Set(report.services.flatMap { $0.instances.map(\.machine) })
        machines = Set(registered.keys).union(placed).sorted().map { id in
            let record = registered[id]
            return Machine(
                id: id, hostname: record?.hostname, up: record != nil, addresses: record?.addresses ?? [],
                agentVersion: record?.agentVersion, started: record?.started)
        }
        services = report.services.sorted { $0.service < $1.service }.map { service in
            Service(
                name: service.service, template: service.template, signature: String(service.signature.prefix(8)),
                version: service.version, instances: service.instances.map { row in
                    Instance(
                        machine: row.machine, state: row.state, pid: row.pid, started: row.started, since: row.since,
                        restarts: row.restarts, signature: row.signature.map { String($0.prefix(8)) },
                        current: row.current, lastError: row.lastError, cpuPercent: nil, memoryBytes: nil)
                }, desired: service.desired, running: service.running, reason: service.reason)
        }
        problems = report.problems.map { problem in
            [problem.service, problem.path].compactMap { $0 }.joined(separator: " ") + ": " + problem.error
        }
    }

    /// The instances with a process: what to ask the agents' resources of.
    public var processes: [(service: String, machine: String, pid: Int32)] {
        services.flatMap { service in
            service.instances.compactMap { instance in instance.pid.map { (service.name, instance.machine, $0) } }
        }
    }

    /// The model with each instance's CPU and memory from `reports` (by machine), matched by service and pid: an
    /// instance whose agent did not report it has none.
    public func withResources(_ reports: [String: ResourceReport]) -> FleetModel {
        var model = self
        for serviceIndex in model.services.indices {
            let name = model.services[serviceIndex].name
            for index in model.services[serviceIndex].instances.indices {
                let instance = model.services[serviceIndex].instances[index]
                let usage = instance.pid.flatMap { pid in
                    reports[instance.machine]?.instances.first { $0.service == name && $0.pid == pid }
                }
                model.services[serviceIndex].instances[index].cpuPercent = usage?.cpuPercent
                model.services[serviceIndex].instances[index].memoryBytes = usage?.memoryBytes
            }
        }
        return model
    }

    /// The service named `name`.
    public func service(_ name: String) -> Service? {
        services.first { $0.name == name }
    }
}
