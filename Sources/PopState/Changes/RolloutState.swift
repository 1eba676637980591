import Foundation

/// Where a service's canary rollout stands, kept in the store (`services/<name>/rollout-state`) so that it outlives
/// the command that started it and any agent: written with the spec that starts it, and with the spec that reverts it.
public struct RolloutState: Hashable, Sendable, Codable {
    /// Whether the rollout goes on or was reverted.
    public enum Phase: String, Hashable, Sendable, Codable {
        /// The signature rolls out: canaries first, then the rest in batches.
        case rolling
        /// A batch failed; ``RolloutState/signature`` is the signature brought back, which restarts at once.
        case reverted
    }

    /// The signature rolling out (or, reverted, the one brought back).
    public var signature: ConfigSignature
    /// When it started.
    public var started: Date
    /// The version whose spec was last healthy everywhere, and its signature: what a revert brings back.
    public var revertTo: Int32?
    /// The signature of ``revertTo``.
    public var revertSignature: ConfigSignature?
    /// The phase.
    public var phase: Phase
    /// Why it was reverted.
    public var reason: String?

    /// Creates a rollout state.
    public init(
        signature: ConfigSignature, started: Date, revertTo: Int32?, revertSignature: ConfigSignature?, phase: Phase,
        reason: String? = nil
    ) {
        self.signature = signature
        self.started = started
        self.revertTo = revertTo
        self.revertSignature = revertSignature
        self.phase = phase
        self.reason = reason
    }
}

/// What a machine's agent does about a configuration restart under a rollout policy.
public enum RolloutDecision: Hashable, Sendable {
    /// Restart now.
    case restart
    /// Wait: for a peer's record to change, or at the latest until `until`, when time alone may change the answer.
    case wait(until: Date?)
    /// A batch failed and the policy reverts: bring back the last signature healthy everywhere.
    case revert(reason: String)
}

extension Rollout {
    /// Whether `machine` may restart into `signature` now: the canary phase, healthy-time gates and batches of
    /// ``maxParallel`` over the machines before it in machine-id order (the only ones whose records `records`
    /// needs), with `state` the service's rollout state and `now` the time.
    ///
    /// A reverted rollout's signature restarts at once (a revert skips the canary phase, and the machines still
    /// running it have nothing to restart). A machine whose agent is not registered does not hold the rollout up.
    public func decide(
        machine: MachineID, into signature: ConfigSignature, placed: [MachineID],
        records: [MachineID: InstanceRecord], registered: Set<MachineID>, state: RolloutState?, now: Date
    ) -> RolloutDecision {
        if let state, state.phase == .reverted, state.signature == signature { return .restart }
        let ordered = placed.sorted()
        let canaries = Array(ordered.prefix(canary ?? 0))
        if canaries.contains(machine) { return .restart }
        let before = ordered.filter { $0 < machine && registered.contains($0) }
        let healthyTime = Double(healthyTimeMilliseconds ?? 0) / 1000
        let deadline = healthyDeadlineMilliseconds.map { Double($0) / 1000 }
        let rolloutStarted = state.flatMap { $0.signature == signature ? $0.started : nil }
        var wakeUps: [Date] = []
        var unfinished = 0
        var canariesUnfinished = 0
        // When the machines before the one looked at last let it go: the rollout's start, or a later moment one of
        // them became healthy.
        var freeSince = rolloutStarted
        for other in before {
            let record = records[other].flatMap { $0.signature == signature ? $0 : nil }
            if let record, record.state == .fatal || record.state == .backoff {
                return failed("\(other): \(record.state.rawValue)\(record.lastError.map { ": \($0)" } ?? "")")
            }
            if let record, record.state == .running {
                // Without a healthy time, running is enough: no clock of another machine is compared with ours.
                let healthyAt = record.since.addingTimeInterval(healthyTime)
                if healthyTime == 0 || healthyAt <= now {
                    freeSince = freeSince.map { max($0, healthyAt) }
                    continue
                }
                wakeUps.append(healthyAt)
            } else if let deadline {
                // Not running the new signature yet: it has until the deadline, counted from its own start or, before
                // it restarted, from when the machines before it let it go. One that still waits for them is not
                // late: they are, and their own deadlines say so.
                let mayRestart =
                    canaries.contains(other) || (canariesUnfinished == 0 && unfinished < (maxParallel ?? Int.max))
                if let begun = record?.since ?? (mayRestart ? freeSince : nil) {
                    let end = begun.addingTimeInterval(deadline)
                    if end <= now {
                        return failed("\(other) not healthy within \(Self.seconds(deadline)) (\(record?.state.rawValue ?? "not restarted"))")
                    }
                    wakeUps.append(end)
                }
            }
            unfinished += 1
            if canaries.contains(other) { canariesUnfinished += 1 }
        }
        if canariesUnfinished > 0 || unfinished >= (maxParallel ?? Int.max) {
            return .wait(until: wakeUps.min())
        }
        return .restart
    }

    private func failed(_ reason: String) -> RolloutDecision {
        autoRevert == true ? .revert(reason: reason) : .wait(until: nil)
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}

extension RolloutState {
    /// The rollout as `pop status` shows it, for a service whose spec has signature `current`, rollout policy
    /// `policy`, and placements `instances` (as the status report shows them); nil when the state concerns an earlier
    /// signature (the rollout was superseded, or the service rolls out without canaries now).
    ///
    /// Only machines with a registered agent count, as they do for the agents' gates. The canary phase lasts until
    /// every canary (the first placed machines in machine-id order) runs the signature for the healthy time.
    public func report(
        current: ConfigSignature, policy: Rollout?, instances: [StatusReport.Instance], now: Date
    ) -> StatusReport.Rollout? {
        guard signature == current else { return nil }
        let up = instances.filter(\.machineUp)
        func runs(_ instance: StatusReport.Instance) -> Bool {
            instance.signature == signature.hex && instance.state == InstanceState.running.rawValue
        }
        let running = up.filter(runs).count
        let reported: StatusReport.Rollout.Phase
        switch phase {
        case .reverted:
            reported = .reverted
        case .rolling where running == up.count:
            reported = .completed
        case .rolling:
            let healthyTime = Double(policy?.healthyTimeMilliseconds ?? 0) / 1000
            let canaries = instances.sorted { $0.machine < $1.machine }.prefix(policy?.canary ?? 0).filter(\.machineUp)
            let healthy = canaries.allSatisfy { canary in
                guard runs(canary) else { return false }
                return healthyTime == 0 || (canary.since.map { $0.addingTimeInterval(healthyTime) <= now } ?? false)
            }
            reported = healthy ? .rolling : .canary
        }
        return StatusReport.Rollout(
            phase: reported, signature: signature.hex, running: running, machines: up.count,
            reason: phase == .reverted ? reason ?? "a batch failed" : nil)
    }
}
