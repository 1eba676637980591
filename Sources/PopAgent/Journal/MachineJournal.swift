import Foundation
import PopState
import Synchronization

/// This machine's lifecycle journals, and the live figures its endpoint reports.
///
/// The agent tells it every lifecycle event (``record(_:)``: written to the instance's journal, or the agent's own)
/// and every snapshot the supervisor reports (``update(_:)``). It keeps what `/metrics` and `pop status` need: each
/// instance's state, pid and start, its last exit code, whether its health check passes, and counts of restarts by
/// reason and of task runs by result. It reads nothing and runs nothing on its own: the endpoint asks it when a
/// request comes.
public final class MachineJournal: Sendable {
    /// The machine.
    public let machine: MachineID
    /// The agent's version (for `pop_build_info`).
    public let version: String
    private let home: PopHome
    private let state = Mutex(State())

    /// What one instance looks like now, as the metrics show it.
    public struct Figures: Sendable, Hashable {
        public var service: ServiceName
        public var state: InstanceState
        public var pid: Int32?
        public var started: Date?
        public var lastExitCode: Int32?
        /// Whether its health check passed last; nil without a check, or before the first answer.
        public var healthy: Bool?
        public var restarts: [LifecycleEvent.RestartReason: Int] = [:]
        /// Task runs by task name and result (`succeeded`, `failed`).
        public var taskRuns: [TaskRunKey: Int] = [:]
        public var lastRestart: LifecycleEvent.RestartReason?
    }

    /// A task's name and how its run ended.
    public struct TaskRunKey: Hashable, Sendable {
        public var task: String
        public var result: String
    }

    private struct State {
        var instances: [ServiceName: Figures] = [:]
        var journals: [ServiceName: EventJournal] = [:]
        var agentJournal: EventJournal?
        var storeConnected = false
        /// Services whose journal was read for an earlier agent's last restart.
        var journalsRead: Set<ServiceName> = []
    }

    /// The journals of `machine` under `home`.
    public init(home: PopHome, machine: MachineID, version: String) {
        self.home = home
        self.machine = machine
        self.version = version
    }

    /// The event journal of `service`'s instance.
    public func journalPath(_ service: ServiceName) -> String {
        home.instanceFolder(machine, service) + "/logs/" + EventJournal.fileName
    }

    /// The agent's own event journal.
    public var agentJournalPath: String { home.machineFolder(machine) + "/" + EventJournal.fileName }

    /// Writes `event` to its journal and counts it; returns it as written (numbered and dated).
    @discardableResult
    public func record(_ event: LifecycleEvent) -> LifecycleEvent {
        let service = event.service.flatMap { try? ServiceName($0) }
        let journal = state.withLock { state -> EventJournal in
            if let service {
                if let journal = state.journals[service] { return journal }
                let journal = EventJournal(path: journalPath(service))
                state.journals[service] = journal
                return journal
            }
            if let journal = state.agentJournal { return journal }
            let journal = EventJournal(path: agentJournalPath, maximumBytes: EventJournal.agentMaximumBytes)
            state.agentJournal = journal
            return journal
        }
        let written = journal.append(event)
        if let service { state.withLock { count(written, service, &$0) } }
        return written
    }

    private func count(_ event: LifecycleEvent, _ service: ServiceName, _ state: inout State) {
        var figures = state.instances[service] ?? Figures(service: service, state: .stopped)
        switch event.kind {
        case .exited:
            if let code = event.exitCode {
                figures.lastExitCode = code
            } else if let signal = event.signal {
                figures.lastExitCode = 128 + signal
            }
        case .restarted:
            if let reason = event.reason {
                figures.restarts[reason, default: 0] += 1
                figures.lastRestart = reason
            }
        case .health:
            figures.healthy = event.healthy
        case .taskFinished:
            let key = TaskRunKey(task: event.task ?? "unknown", result: event.succeeded == true ? "succeeded" : "failed")
            figures.taskRuns[key, default: 0] += 1
        case .started, .backoff, .fatal, .adopted, .stopped, .taskStarted, .agentStarted, .agentStopped:
            break
        }
        state.instances[service] = figures
    }

    /// The supervisor's latest snapshot of an instance.
    public func update(_ status: InstanceStatus) {
        state.withLock { state in
            var figures = state.instances[status.name] ?? Figures(service: status.name, state: status.state)
            figures.state = status.state
            figures.pid = status.pid
            figures.started = status.started
            state.instances[status.name] = figures
        }
    }

    /// Forgets an instance (no longer supervised here); its journal stays on disk.
    public func remove(_ service: ServiceName) {
        state.withLock { state in
            state.instances[service] = nil
            state.journals.removeValue(forKey: service)?.close()
        }
    }

    /// Whether the agent's session with the store is up.
    public func setStoreConnected(_ connected: Bool) {
        state.withLock { $0.storeConnected = connected }
    }

    /// Why `service`'s instance was last started again: what this agent recorded, else what its journal says an
    /// earlier agent recorded.
    public func lastRestart(of service: ServiceName) -> LifecycleEvent.RestartReason? {
        let (known, lookedUp) = state.withLock { state in
            (state.instances[service]?.lastRestart, !state.journalsRead.insert(service).inserted)
        }
        if known != nil || lookedUp { return known }
        let path = journalPath(service)
        let events = (EventJournalReader.readFile(path + ".1")?.events ?? []) + (EventJournalReader.readFile(path)?.events ?? [])
        let reason = events.last { $0.kind == .restarted }?.reason
        if let reason {
            state.withLock { state in
                var figures = state.instances[service] ?? Figures(service: service, state: .stopped)
                if figures.lastRestart == nil { figures.lastRestart = reason }
                state.instances[service] = figures
            }
        }
        return reason
    }

    /// Every instance's figures, by service name.
    public func figures() -> (instances: [Figures], storeConnected: Bool) {
        state.withLock { state in
            (state.instances.values.sorted { $0.service.rawValue < $1.service.rawValue }, state.storeConnected)
        }
    }
}
