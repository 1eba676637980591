import PopState

/// Turns what the supervisor reports (each change of an instance's snapshot) and what the agent decides (restart this
/// one, because...) into lifecycle events: a pure value, fed by the agent's driver, whose events go to the
/// ``MachineJournal``.
///
/// From two successive snapshots of an instance it tells: the command's process ended (`exited`, with its status), the
/// instance waits to start again (`backoff`) or gave up (`fatal`), its health check changed its answer (`health`), a
/// new process started (`started`), and, when that start follows a failure or a decision of the agent, why
/// (`restarted`: crash, health, config-change, manual).
public struct LifecycleTracker: Sendable {
    private var last: [ServiceName: InstanceStatus] = [:]
    /// Restarts the agent decided and whose new process has not started yet.
    private var pending: [ServiceName: LifecycleEvent.RestartReason] = [:]

    /// An empty tracker.
    public init() {}

    /// The agent restarts `service`'s instance (its configuration changed, or `pop restart` asked for it).
    public mutating func restarting(_ service: ServiceName, because reason: LifecycleEvent.RestartReason) {
        pending[service] = reason
    }

    /// The agent took over a process an earlier agent started.
    public mutating func adopted(_ status: InstanceStatus) -> [LifecycleEvent] {
        last[status.name] = status
        return [LifecycleEvent(.adopted, service: status.name.rawValue, pid: status.pid, signature: status.signature.hex)]
    }

    /// The supervisor reported `event`.
    public mutating func reported(_ event: InstanceEvent) -> [LifecycleEvent] {
        switch event {
        case .removed(let name):
            let previous = last.removeValue(forKey: name)
            pending[name] = nil
            guard let previous, previous.state != .stopped else { return [] }
            return [LifecycleEvent(.stopped, service: name.rawValue, detail: "removed")]
        case .changed(let status):
            let previous = last[status.name]
            last[status.name] = status
            return Self.events(from: previous, to: status, pending: &pending)
        }
    }

    static func events(
        from old: InstanceStatus?, to new: InstanceStatus, pending: inout [ServiceName: LifecycleEvent.RestartReason]
    ) -> [LifecycleEvent] {
        let service = new.name.rawValue
        var events: [LifecycleEvent] = []
        if let exit = new.lastExit, exit != old?.lastExit {
            switch exit.status {
            case .exited(let code): events.append(LifecycleEvent(.exited, service: service, pid: exit.pid, exitCode: code))
            case .signaled(let signal): events.append(LifecycleEvent(.exited, service: service, pid: exit.pid, signal: signal))
            case .unknown: events.append(LifecycleEvent(.exited, service: service, pid: exit.pid, detail: "status unknown (adopted)"))
            }
        }
        if new.state != old?.state {
            switch new.state {
            case .backoff:
                events.append(LifecycleEvent(.backoff, service: service, detail: new.lastError))
            case .fatal:
                events.append(LifecycleEvent(.fatal, service: service, detail: new.lastError))
            case .stopped where old != nil:
                events.append(LifecycleEvent(.stopped, service: service))
            case .installing, .starting, .running, .stopping, .stopped:
                break
            }
        }
        // A new attempt begins (setup steps or the command) after a failure, a stop or nothing: why, if it is a restart.
        let running: Set<InstanceState> = [.installing, .starting, .running]
        if running.contains(new.state), old.map({ !running.contains($0.state) }) ?? true {
            let reason = pending.removeValue(forKey: new.name)
                ?? (old?.state == .backoff ? (new.lastFailure == .unhealthy ? .health : .crash) : nil)
            if let reason { events.append(LifecycleEvent(.restarted, service: service, reason: reason)) }
        }
        if let pid = new.pid, pid != old?.pid, new.state == .starting || new.state == .running {
            events.append(LifecycleEvent(.started, service: service, pid: pid, signature: new.signature.hex))
        }
        if let healthy = new.healthy, healthy != old?.healthy {
            events.append(LifecycleEvent(.health, service: service, healthy: healthy))
        }
        return events
    }
}
