import Foundation

/// What `pop status` shows, and exactly the shape of `pop status --json`.
///
/// The one declaration of that contract: the command line builds it from a ``StatusSnapshot`` and prints it (as a
/// table, or with ``PopJSON/outputEncoder()``); tests and benchmarks decode the command's output with ``decode(_:)``.
public struct StatusReport: Codable, Hashable, Sendable {
    /// One placement of a service on a machine, and what that machine's agent reports about it.
    public struct Instance: Codable, Hashable, Sendable, CustomStringConvertible {
        /// The machine's id.
        public var machine: String
        /// The machine's host name, while its agent is registered.
        public var hostname: String?
        /// Whether the machine's agent is registered.
        public var machineUp: Bool
        /// An ``InstanceState`` raw value; `pending` when the agent has published nothing yet, `unknown` when the
        /// machine is down.
        public var state: String
        /// The process id, while the machine is up.
        public var pid: Int32?
        /// The signature the instance runs.
        public var signature: String?
        /// Whether the instance runs the service's current signature.
        public var current: Bool
        /// When the process started.
        public var started: Date?
        /// Since when the instance is in its state.
        public var since: Date?
        /// How often the agent restarted it.
        public var restarts: Int?
        /// The last error, if any.
        public var lastError: String?
        /// Why the agent last started it again: `crash`, `config-change`, `health` or `manual`.
        public var lastRestart: String?
        /// CPU use, in percent of one core (since the agent was last asked, or over the process's life), while known.
        public var cpuPercent: Double?
        /// Resident memory of the instance's process group, in bytes, while known.
        public var memoryBytes: Int64?
        /// The machine the scheduler moved this instance from (a lost or drained machine), if it did.
        public var rescheduledFrom: String? = nil

        /// Creates a row.
        public init(
            machine: String, hostname: String? = nil, machineUp: Bool, state: String, pid: Int32? = nil,
            signature: String? = nil, current: Bool, started: Date? = nil, since: Date? = nil, restarts: Int? = nil,
            lastError: String? = nil, lastRestart: String? = nil, cpuPercent: Double? = nil, memoryBytes: Int64? = nil,
            rescheduledFrom: String? = nil
        ) {
            self.machine = machine
            self.hostname = hostname
            self.machineUp = machineUp
            self.state = state
            self.pid = pid
            self.signature = signature
            self.current = current
            self.started = started
            self.since = since
            self.restarts = restarts
            self.lastError = lastError
            self.lastRestart = lastRestart
            self.cpuPercent = cpuPercent
            self.memoryBytes = memoryBytes
            self.rescheduledFrom = rescheduledFrom
        }

        /// The state as `pop status` shows it: a waiting instance with what it waits for, `waiting (db: not healthy)`.
        public var shownState: String {
            state == InstanceState.waiting.rawValue ? "waiting (\(lastError ?? "requirements"))" : state
        }

        /// The state as an ``InstanceState``; nil for `pending` and `unknown`.
        public var instanceState: InstanceState? { InstanceState(rawValue: state) }

        public var description: String {
            "\(machine) \(state) pid \(pid.map(String.init) ?? "-") restarts \(restarts ?? 0) error \(lastError ?? "-")"
        }
    }

    /// One service with its instances.
    public struct Service: Codable, Hashable, Sendable {
        /// The service's name.
        public var service: String
        /// The template it was built from.
        public var template: String
        /// Its current configuration signature.
        public var signature: String
        /// Its configuration version.
        public var version: Int32
        /// Its placements, by machine id.
        public var instances: [Instance]
        /// How many instances should run, when it is deployed by count; `nil` when it is pinned.
        public var desired: Int? = nil
        /// How many of its instances run the current configuration.
        public var running: Int = 0
        /// Why fewer than `desired` are placed, such as "2 of 3: only 2 eligible machines".
        public var reason: String? = nil
        /// Where its canary rollout stands; absent when it has none for its current signature.
        public var rollout: Rollout? = nil
    }

    /// Where a service's canary rollout stands.
    public struct Rollout: Codable, Hashable, Sendable, CustomStringConvertible {
        /// The rollout's phase.
        public enum Phase: String, Codable, Hashable, Sendable {
            /// The canaries do not all run the new signature and pass the healthy time yet.
            case canary
            /// The canaries are healthy; the other machines follow in batches.
            case rolling
            /// Every placed machine with a registered agent runs the new signature.
            case completed
            /// A batch failed; ``Rollout/signature`` is the signature brought back.
            case reverted
        }

        /// The phase.
        public var phase: Phase
        /// The signature rolling out (reverted: the one brought back), which is the service's current signature.
        public var signature: String
        /// How many placed machines with a registered agent run it.
        public var running: Int
        /// How many placed machines have a registered agent.
        public var machines: Int
        /// Why it was reverted.
        public var reason: String?

        /// Creates a rollout's report.
        public init(phase: Phase, signature: String, running: Int, machines: Int, reason: String? = nil) {
            self.phase = phase
            self.signature = signature
            self.running = running
            self.machines = machines
            self.reason = reason
        }

        /// The line `pop status` prints after the table, without the service's name: `rollout canary; 0 of 4 run
        /// 1a2b3c4d`, `rollout reverted (m1: backoff); 4 of 4 run 5e6f7a8b`.
        public var description: String {
            let phase = self.phase == .reverted ? "reverted (\(reason ?? "a batch failed"))" : self.phase.rawValue
            return "rollout \(phase); \(running) of \(machines) run \(signature.prefix(8))"
        }
    }

    /// A record that could not be read.
    public struct Problem: Codable, Hashable, Sendable {
        /// The service it belongs to, if any.
        public var service: String?
        /// The node.
        public var path: String?
        /// What is wrong.
        public var error: String
    }

    /// The store the report was read from.
    public var store: String
    /// The machines whose agents are registered.
    public var machinesUp: [String]
    /// The services shown.
    public var services: [Service]
    /// The records that could not be read.
    public var problems: [Problem]

    /// The report of `snapshot`, for every service or `only` one.
    public init(snapshot: StatusSnapshot, only: ServiceName?, now: Date = Date()) {
        let shortfalls = snapshot.services.contains { $0.scheduling != nil }
            ? SchedulePlan(SchedulingState(snapshot), now: now).shortfalls : [:]
        store = snapshot.store
        problems = snapshot.problems.filter { only == nil || $0.service == nil || $0.service == only?.rawValue }.map {
            Problem(service: $0.service, path: $0.error.path, error: $0.error.message)
        }
        let machines = Dictionary(snapshot.machines.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        machinesUp = snapshot.machines.map(\.id.rawValue).sorted()
        services = snapshot.services.filter { only == nil || $0.spec.name == only }.map { status in
            let current = snapshot.instanceSignature(of: status)
            let rows = status.placements.sorted { $0.machine < $1.machine }.map { placement -> Instance in
                let machine = machines[placement.machine]
                let up = machine != nil
                let instance = placement.instance
                let state = !up ? "unknown" : instance?.state.rawValue ?? "pending"
                return Instance(
                    machine: placement.machine.rawValue, hostname: machine?.hostname, machineUp: up, state: state,
                    pid: up ? instance?.pid : nil, signature: instance?.signature.hex,
                    current: instance?.signature == current, started: instance?.started,
                    since: instance?.since, restarts: instance?.restarts, lastError: instance?.lastError,
                    lastRestart: instance?.lastRestart?.rawValue,
                    rescheduledFrom: placement.placement.rescheduledFrom?.rawValue)
            }
            return Service(
                service: status.spec.name.rawValue, template: status.spec.template.name,
                signature: status.signature.hex, version: status.version, instances: rows,
                desired: status.scheduling?.count,
                running: rows.filter { $0.machineUp && $0.state == InstanceState.running.rawValue && $0.current }.count,
                reason: shortfalls[status.spec.name])
        }
    }

    /// The service named `name`, if shown.
    public func service(_ name: String) -> Service? {
        services.first { $0.service == name }
    }

    /// `value` with one decimal or none, rounded to the nearest (an exact half to even, as `printf`'s `%.1f` does),
    /// for the table's figures: Foundation's `String(format:)` costs more than the rest of a row.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        let scaled = (decimals == 0 ? value : value * 10).rounded(.toNearestOrEven)
        guard scaled.magnitude < 1e15 else { return value.description }
        let digits = Int64(scaled.magnitude)
        let sign = scaled < 0 ? "-" : ""
        return decimals == 0 ? sign + String(digits) : sign + String(digits / 10) + "." + String(digits % 10)
    }

    /// Reads `pop status --json` output.
    public static func decode(_ json: String) throws -> StatusReport {
        try PopJSON.outputDecoder().decode(StatusReport.self, from: Data(json.utf8))
    }
}
