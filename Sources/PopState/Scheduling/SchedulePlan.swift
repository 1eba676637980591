import Foundation

/// What the scheduler writes to bring the services deployed by count to their counts: a pure function of a
/// ``SchedulingState`` and the time, so that it is tested with `==` and any scheduler decides the same.
///
/// - Instances go to distinct eligible machines (registered, not drained, with the policy's labels), chosen by the
///   fewest instances of the service with the same `spread` label value, then the fewest placements on the machine,
///   then the machine id.
/// - An instance on a machine whose registration has been gone for longer than the service's reschedule-after is
///   placed elsewhere (the new placement names the machine it replaces) and its old placement is deleted. Until then
///   it still counts, and the plan says when to look again (`wakeAt`).
/// - An instance on a machine that is registered but no longer eligible (drained, labels changed) is replaced first;
///   its placement is deleted only once at least `count` instances on eligible machines run the current
///   configuration, so no moment has fewer than `count` running.
/// - Beyond `count` (after `pop scale` down), instances on missing machines go first, then those in the most crowded
///   spread value and on the most loaded machine.
/// - Pinned placements are never touched.
public struct SchedulePlan: Hashable, Sendable {
    /// One write to the placements.
    public enum Change: Hashable, Sendable, CustomStringConvertible {
        /// Create the placement of the service on the machine.
        case place(ServiceName, MachineID, Placement)
        /// Delete the placement (and the instance record, when one exists).
        case unplace(ServiceName, MachineID, hasInstance: Bool)

        public var description: String {
            switch self {
            case .place(let service, let machine, let placement):
                "place \(service) on \(machine)" + (placement.rescheduledFrom.map { " (from \($0))" } ?? "")
            case .unplace(let service, let machine, _): "unplace \(service) from \(machine)"
            }
        }
    }

    /// The placements to create and delete, service by service.
    public var changes: [Change] = []
    /// Machine facts to write (absent-since set or cleared), by machine.
    public var facts: [MachineID: MachineFacts] = [:]
    /// When to plan again even if nothing changes: the earliest moment a missing machine's instances may move.
    public var wakeAt: Date?
    /// Why a service runs fewer placements than its count, by service: "2 of 3: only 2 eligible machines".
    public var shortfalls: [ServiceName: String] = [:]

    /// Creates an empty plan.
    public init(
        changes: [Change] = [], facts: [MachineID: MachineFacts] = [:], wakeAt: Date? = nil,
        shortfalls: [ServiceName: String] = [:]
    ) {
        self.changes = changes
        self.facts = facts
        self.wakeAt = wakeAt
        self.shortfalls = shortfalls
    }

    /// Whether the plan writes nothing.
    public var writesNothing: Bool { changes.isEmpty && facts.isEmpty }

    /// The plan for `state` at `now`.
    public init(_ state: SchedulingState, now: Date) {
        var facts = state.facts
        var load = state.load
        // Machines holding placements by count are timed from when they were first seen missing.
        let holding = Set(state.services.flatMap { $0.placements.filter(\.value.isScheduled).keys })
        for machine in holding.sorted() where !state.registered.contains(machine) && facts[machine]?.absentSince == nil {
            var updated = facts[machine] ?? MachineFacts()
            updated.absentSince = now
            facts[machine] = updated
            self.facts[machine] = updated
        }
        for (machine, known) in facts.sorted(by: { $0.key < $1.key })
        where state.registered.contains(machine) && known.absentSince != nil {
            var updated = known
            updated.absentSince = nil
            facts[machine] = updated
            self.facts[machine] = updated
        }
        for service in state.services.sorted(by: { $0.name < $1.name }) {
            plan(service, state: state, facts: facts, load: &load, now: now)
        }
    }

    private mutating func plan(
        _ service: SchedulingState.Service, state: SchedulingState, facts: [MachineID: MachineFacts],
        load: inout [MachineID: Int], now: Date
    ) {
        let policy = service.policy
        let after = Double(policy.rescheduleAfterMilliseconds) / 1000
        var kept: [MachineID] = []
        var waiting: [MachineID] = []
        var lost: [MachineID] = []
        var leaving: [MachineID] = []
        for (machine, placement) in service.placements.sorted(by: { $0.key < $1.key }) where placement.isScheduled {
            if state.registered.contains(machine) {
                if policy.admits(facts[machine]) { kept.append(machine) } else { leaving.append(machine) }
            } else {
                let deadline = (facts[machine]?.absentSince ?? now).addingTimeInterval(after)
                if now >= deadline {
                    lost.append(machine)
                } else {
                    waiting.append(machine)
                    wakeAt = wakeAt.map { min($0, deadline) } ?? deadline
                }
            }
        }
        func spreadValue(_ machine: MachineID) -> String {
            policy.spread.flatMap { facts[machine]?.labels[$0] } ?? ""
        }
        var spread: [String: Int] = [:]
        for machine in kept + waiting { spread[spreadValue(machine), default: 0] += 1 }
        let occupied = Set(service.placements.keys)
        var candidates = Set(state.registered.filter { !occupied.contains($0) && policy.admits(facts[$0]) })

        // New placements, each naming the machine it replaces while there are lost or leaving ones.
        var replaced = lost + leaving
        var active = kept.count + waiting.count
        var placed: [MachineID] = []
        while active < policy.count,
            let best = candidates.min(by: { (spread[spreadValue($0), default: 0], load[$0, default: 0], $0) < (spread[spreadValue($1), default: 0], load[$1, default: 0], $1) })
        {
            candidates.remove(best)
            let from = replaced.isEmpty ? nil : replaced.removeFirst()
            changes.append(
                .place(service.name, best, Placement(deployed: now, scheduled: true, rescheduledFrom: from)))
            placed.append(best)
            load[best, default: 0] += 1
            spread[spreadValue(best), default: 0] += 1
            active += 1
        }

        // Lost placements go once replaced, or when enough run elsewhere; otherwise they wait for a machine.
        let replacedLost = min(lost.count, placed.count)
        for (index, machine) in lost.enumerated() where index < replacedLost || active >= policy.count {
            unplace(service, machine, load: &load)
        }
        // Leaving placements go only once `count` instances run on eligible machines.
        let runningKept = kept.filter { service.running.contains($0) }.count
        if runningKept >= policy.count {
            for machine in leaving { unplace(service, machine, load: &load) }
        }
        // Beyond the count: missing machines first, then the most crowded spread value and most loaded machine.
        var surplus = active - policy.count
        var removable = waiting
        while surplus > 0, !removable.isEmpty {
            unplace(service, removable.removeLast(), load: &load)
            surplus -= 1
        }
        var pool = kept
        while surplus > 0,
            let worst = pool.max(by: { (spread[spreadValue($0), default: 0], load[$0, default: 0], $0) < (spread[spreadValue($1), default: 0], load[$1, default: 0], $1) })
        {
            pool.removeAll { $0 == worst }
            unplace(service, worst, load: &load)
            spread[spreadValue(worst), default: 0] -= 1
            surplus -= 1
        }
        if active < policy.count {
            let eligible = state.registered.filter { policy.admits(facts[$0]) }.count
            shortfalls[service.name] =
                "\(active) of \(policy.count): only \(eligible) eligible machine\(eligible == 1 ? "" : "s")"
                + (policy.labels.isEmpty ? "" : " with \(policy.labelText)")
        }
    }

    private mutating func unplace(_ service: SchedulingState.Service, _ machine: MachineID, load: inout [MachineID: Int]) {
        changes.append(.unplace(service.name, machine, hasInstance: service.instances[machine] != nil))
        load[machine, default: 1] -= 1
    }
}
