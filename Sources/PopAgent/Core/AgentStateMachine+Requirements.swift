import Foundation
import PopState

/// How a placed service's requirements stand on this machine: what the start gate and the policies decided last.
struct RequirementTracking: Hashable, Sendable {
    /// The unmet slots with why (`not healthy`), as last evaluated.
    var unmet: [String: String] = [:]
    /// When each unmet slot was first seen unmet.
    var unmetSince: [String: Date] = [:]
    /// Slots under the `restart` policy that stayed lost for their debounce while the instance ran.
    var lost: Set<String> = []
    /// When each lost slot was seen met again.
    var recoveredSince: [String: Date] = [:]
    /// Since when the instance waits for its requirements (not started, or stopped by a `stop` policy).
    var waitingSince: Date?

    /// What a waiting instance's record says: `db: not healthy, cache: not started`.
    var reason: String {
        unmet.keys.sorted().map { "\($0): \(unmet[$0]!)" }.joined(separator: ", ")
    }
}

/// Requirements: an instance starts only when each of its requirements is met somewhere in the fleet; a running one
/// follows each requirement's policy when it is lost, after the requirement's debounce.
extension AgentStateMachine {
    /// Holds back the planned starts whose requirements are not met, and adds the stops and restarts the policies
    /// call for. `now` is when the services were read; a debounce still running schedules a recheck.
    mutating func gateOnRequirements(
        _ planned: inout [ReconcileAction], scope: Set<ServiceName>, at now: Date
    ) -> [AgentAction] {
        var actions: [AgentAction] = []
        var recheck: Date?
        for name in scope.sorted() {
            guard var entry = services[name] else { continue }
            guard let placed = entry.placed, placed.spec.template.requires != nil, entry.activity == .idle,
                entry.problem == nil
            else {
                if entry.requirements != RequirementTracking() {
                    let waited = entry.requirements.waitingSince != nil
                    services[name]?.requirements = RequirementTracking()
                    if waited { markRecord(name) }
                }
                continue
            }
            let before = entry.requirements
            var tracking = before
            let unmet = placed.spec.unmetRequirements(placed.requirements)
            tracking.unmet = unmet
            for slot in unmet.keys where tracking.unmetSince[slot] == nil { tracking.unmetSince[slot] = now }
            tracking.unmetSince = tracking.unmetSince.filter { unmet[$0.key] != nil }
            let index = planned.firstIndex { $0.service == name }
            let runs = entry.supervision?.status.map { $0.state != .stopped } ?? false
            var waits = false
            if let index, case .start = planned[index] {
                if !unmet.isEmpty {
                    planned.remove(at: index)
                    waits = true
                }
                tracking.lost = []
                tracking.recoveredSince = [:]
            } else if index != nil {
                // Restarted anyway (its configuration or relation data changed): a loss is settled.
                tracking.lost = []
                tracking.recoveredSince = [:]
            } else if runs {
                for (slot, requirement, _) in placed.spec.boundRequirements where requirement.policy != .wait {
                    let debounce = TimeInterval(requirement.debounceMilliseconds) / 1000
                    if let since = tracking.unmetSince[slot] {
                        tracking.recoveredSince[slot] = nil
                        let due = since.addingTimeInterval(debounce)
                        guard due <= now else {
                            recheck = min(recheck ?? due, due)
                            continue
                        }
                        if requirement.policy == .stop {
                            planned.append(.stop(name))
                            actions.append(.note(.requirementPolicyApplied(name, slot: slot, .stop)))
                            waits = true
                            break
                        }
                        tracking.lost.insert(slot)
                    } else if tracking.lost.contains(slot) {
                        let since = tracking.recoveredSince[slot] ?? now
                        tracking.recoveredSince[slot] = since
                        let due = since.addingTimeInterval(debounce)
                        guard due <= now, unmet.isEmpty else {
                            if due > now { recheck = min(recheck ?? due, due) }
                            continue
                        }
                        tracking.lost.remove(slot)
                        tracking.recoveredSince[slot] = nil
                        planned.append(.restart(placed.desired, because: .requirementRecovered(slot: slot)))
                        actions.append(.note(.requirementPolicyApplied(name, slot: slot, .restart)))
                        break
                    }
                }
            } else {
                // Nothing runs and nothing is planned (the instance is being set up): it waits as it did.
                waits = before.waitingSince != nil && !unmet.isEmpty
            }
            if waits {
                tracking.waitingSince = before.waitingSince ?? now
                if before.waitingSince == nil || before.unmet != unmet {
                    actions.append(.note(.requirementsAwaited(name, unmet)))
                }
            } else {
                tracking.waitingSince = nil
            }
            entry.requirements = tracking
            services[name] = entry
            // A running instance's record is the supervisor's, until it has stopped.
            let changed =
                before.waitingSince != tracking.waitingSince || (tracking.waitingSince != nil && before.unmet != unmet)
            if changed, waitingRecord(entry) != nil { markRecord(name) }
        }
        if let recheck, recheck < requirementRecheck ?? .distantFuture {
            requirementRecheck = recheck
            let delay = max(1, Int((recheck.timeIntervalSince(now) * 1000).rounded(.up)) + 1)
            actions.append(.schedule(.recheckRequirements, after: .milliseconds(delay)))
        }
        return actions
    }

    /// The services placed here that require `service` (any service, when `nil`).
    func dependents(of service: ServiceName?) -> Set<ServiceName> {
        guard let service else { return Set(requiring.keys) }
        return Set(requiring.compactMap { name, required in required.contains(service) && name != service ? name : nil })
    }

    /// The dependents a store change wakes: a change of a required service's spec or of its instances on any
    /// machine, or of any machine's registration.
    func requirementWakeups(_ event: NodeEvent) -> Set<ServiceName> {
        if event.path == paths.machines || event.path.hasPrefix(paths.machines + "/") { return dependents(of: nil) }
        guard event.path.hasPrefix(paths.services + "/") else { return [] }
        let parts = event.path.dropFirst(paths.services.count + 1).split(separator: "/")
        guard let first = parts.first, let service = try? ServiceName(String(first)) else { return [] }
        guard parts.count == 1 || parts[1] == "machines" else { return [] }
        return dependents(of: service)
    }

    /// The watches that follow the services required here (only needed when the agent does not follow the whole
    /// namespace): each one's placements with their instance records.
    var requirementWatches: Set<WatchKey> {
        Set(requiring.values.flatMap { required in required.map { WatchKey.subtree(paths.placements($0)) } })
    }

    /// The record of an instance that waits for its requirements, when it waits and nothing runs.
    func waitingRecord(_ entry: ServiceEntry) -> InstanceRecord? {
        guard let since = entry.requirements.waitingSince, let placed = entry.placed else { return nil }
        if let status = entry.supervision?.status, status.state != .stopped { return nil }
        return InstanceRecord(
            machine: machine, pid: nil, signature: placed.desired.signature, state: .waiting, since: since,
            lastError: entry.requirements.reason)
    }
}
