import Foundation

/// What a change to one service would do, worked out without writing anything: the plan every state-changing command
/// prints with `--plan`.
///
/// A pure function of the service's desired state before and after the change (``ServiceState``) and of the machines
/// whose instances run now: which instances would restart, start or stop, on which machines and why; which changes
/// need no restart; the restarts' batches under the rollout policy; and the lowest number of instances running while
/// it rolls out. A secret option's values are never carried, only that it changed.
public struct ChangePlan: Hashable, Sendable, Codable {
    /// What happens to the instance on one machine, and why.
    public struct InstanceChange: Hashable, Sendable, Codable {
        /// The machine.
        public var machine: String
        /// Why, in a few words: `options changed: --port`, `deployed`, `restart asked for`.
        public var reason: String

        /// Creates an instance change.
        public init(machine: String, reason: String) {
            self.machine = machine
            self.reason = reason
        }
    }

    /// The service.
    public var service: String
    /// The service's configuration version now (its spec node's version); nil when the service does not exist.
    public var version: Int32?
    /// The signature now; nil when the service does not exist.
    public var signatureBefore: String?
    /// The signature after the change; nil when the service would be removed.
    public var signatureAfter: String?
    /// The options that would change, in the template's order (a secret's values left out).
    public var options: [ConfigurationPlan.OptionChange]
    /// The instances that would restart, in the order they would.
    public var restarts: [InstanceChange]
    /// The machines where an instance would start.
    public var starts: [InstanceChange]
    /// The machines where an instance would stop.
    public var stops: [InstanceChange]
    /// The changes that need no restart.
    public var withoutRestart: [String]
    /// The restarts in batches, in order: each batch restarts once the one before runs the new signature.
    public var batches: [[String]]
    /// How many of the service's instances run now.
    public var runningNow: Int
    /// The lowest number of the service's instances running at any moment while the change rolls out.
    public var lowestRunning: Int
    /// Instances of other services that would restart because their relation data would change.
    public var dependents: [DependentRestart] = []

    /// Reads `--plan --json` output.
    public static func decode(_ json: String) throws -> ChangePlan {
        try PopJSON.outputDecoder().decode(ChangePlan.self, from: Data(json.utf8))
    }

    /// Whether applying the change would change anything.
    public var changesAnything: Bool {
        signatureBefore != signatureAfter || !restarts.isEmpty || !starts.isEmpty || !stops.isEmpty
            || !withoutRestart.isEmpty || !dependents.isEmpty
    }

    /// The plan of taking `service` from `before` to `after`, at configuration version `version`, while the machines
    /// in `running` run an instance of it.
    public init(
        service: ServiceName, version: Int32?, before: ServiceState, after: ServiceState, running: Set<MachineID>
    ) {
        self.service = service.rawValue
        self.version = version
        signatureBefore = before.spec?.signature.hex
        signatureAfter = after.spec?.signature.hex
        if let old = before.spec, let new = after.spec {
            options = ConfigurationPlan.OptionChange.between(old, new)
        } else {
            options = []
        }
        let removed = after.spec == nil && before.spec != nil
        stops = before.placed.subtracting(after.placed).sorted().map {
            InstanceChange(machine: $0.rawValue, reason: removed ? "service removed" : "undeployed")
        }
        starts = after.spec == nil
            ? []
            : after.placed.subtracting(before.placed).sorted().map {
                InstanceChange(machine: $0.rawValue, reason: "deployed")
            }
        let kept = before.placed.intersection(after.placed).sorted()
        let newSignature = before.spec != nil && after.spec != nil && signatureBefore != signatureAfter
        let why = newSignature ? Self.reason(before.spec!, after.spec!, options) : "restart asked for"
        let restarting = kept.filter { newSignature || after.restartAsked.contains($0) }.map {
            InstanceChange(machine: $0.rawValue, reason: why)
        }
        restarts = restarting
        withoutRestart = Self.changesWithoutRestart(before, after)
        // The rollout policy paces configuration restarts only; an asked-for restart happens on every machine at once.
        // The canaries (the first machines in machine-id order) go first, on their own.
        let canaries = newSignature ? min(after.rollout?.canary ?? 0, restarting.count) : 0
        let rest = restarting.dropFirst(canaries).map(\.machine)
        let width = max(newSignature ? (after.rollout?.maxParallel ?? rest.count) : rest.count, 1)
        let batched = (canaries > 0 ? [restarting.prefix(canaries).map(\.machine)] : [])
            + stride(from: 0, to: rest.count, by: width).map { start in Array(rest[start..<min(start + width, rest.count)]) }
        batches = batched
        let running = running.intersection(before.placed)
        runningNow = running.count
        let remaining = running.subtracting(before.placed.subtracting(after.placed))
        let remainingNames = Set(remaining.map(\.rawValue))
        var worstBatch = 0
        for batch in batched { worstBatch = max(worstBatch, batch.filter { remainingNames.contains($0) }.count) }
        var lowest = remaining.count - worstBatch
        if let old = before.count, let new = after.count, new < old {
            lowest -= min(old - new, lowest)
        }
        lowestRunning = max(lowest, 0)
    }

    /// Why a new signature restarts an instance: the options (and template) that changed.
    static func reason(
        _ before: ServiceSpec, _ after: ServiceSpec, _ options: [ConfigurationPlan.OptionChange]
    ) -> String {
        var parts: [String] = []
        if before.template != after.template { parts.append("template \(after.template.name) changed") }
        if !options.isEmpty {
            parts.append("options changed: " + options.map(\.text).joined(separator: ", "))
        }
        return parts.isEmpty ? "new signature" : parts.joined(separator: "; ")
    }

    static func changesWithoutRestart(_ before: ServiceState, _ after: ServiceState) -> [String] {
        var changes: [String] = []
        if before.spec == nil, let spec = after.spec {
            changes.append("service \(spec.name) added from template \(spec.template.name)")
        }
        if before.rollout?.maxParallel != after.rollout?.maxParallel, after.spec != nil {
            let text = { (value: Int?) in value.map { "\($0) at a time" } ?? "all at once" }
            changes.append(
                "configuration changes roll out \(text(after.rollout?.maxParallel)) (was \(text(before.rollout?.maxParallel)))")
        }
        switch (before.count, after.count) {
        case (nil, let new?) where after.spec != nil:
            changes.append("deployed by count: the scheduler places \(new) instance\(new == 1 ? "" : "s")")
        case (let old?, let new?) where old < new:
            changes.append("count \(old) → \(new): the scheduler starts \(new - old) more on machines it chooses")
        case (let old?, let new?) where old > new:
            changes.append("count \(old) → \(new): the scheduler stops \(old - new)")
        case (let old?, nil) where after.spec != nil:
            changes.append("no longer deployed by count (was \(old))")
        default:
            break
        }
        if before.historyLimit != after.historyLimit, after.spec != nil, let limit = after.historyLimit {
            changes.append("history keeps the last \(limit) specs")
        }
        return changes
    }
}

/// The desired state of one service as far as a ``ChangePlan`` goes.
public struct ServiceState: Hashable, Sendable {
    /// The spec; nil when the service does not exist.
    public var spec: ServiceSpec?
    /// The machines it is placed on.
    public var placed: Set<MachineID>
    /// The machines asked to restart their instance (`pop restart`).
    public var restartAsked: Set<MachineID>
    /// How configuration changes roll out.
    public var rollout: Rollout?
    /// The count, when it is deployed by count.
    public var count: Int?
    /// How many specs its history keeps, when set.
    public var historyLimit: Int?

    /// Creates a service state.
    public init(
        spec: ServiceSpec?, placed: Set<MachineID> = [], restartAsked: Set<MachineID> = [], rollout: Rollout? = nil,
        count: Int? = nil, historyLimit: Int? = nil
    ) {
        self.spec = spec
        self.placed = placed
        self.restartAsked = restartAsked
        self.rollout = rollout
        self.count = count
        self.historyLimit = historyLimit
    }
}
