/// Something that happened to an instance, or to an agent, recorded in a journal on that machine.
///
/// The agent writes one per decision it carries out and per change the supervisor reports (docs/observability.md,
/// Lifecycle events). `pop events` and `pop logs --events` show them from every machine.
public struct LifecycleEvent: Codable, Hashable, Sendable {
    /// What happened.
    public enum Kind: String, Codable, Hashable, Sendable, CaseIterable {
        /// A process was started (the command, after its setup steps): `pid`, `signature`.
        case started
        /// The process exited: `exitCode` or `signal` (neither when the agent adopted it and cannot know).
        case exited
        /// The instance is being started again: `reason`.
        case restarted
        /// It waits before the next start: `delayMilliseconds`.
        case backoff
        /// It failed too often and is left stopped until `pop restart` or a new configuration: `detail`.
        case fatal
        /// Its health check passed or failed where it had not before: `healthy`, `detail`.
        case health
        /// An agent took over a process an earlier agent started: `pid`, `signature`.
        case adopted
        /// It was stopped on purpose (undeployed, removed, or the agent asked to stop its instances).
        case stopped
        /// A `pop run` task started on this machine: `task`, `taskID`.
        case taskStarted = "task-started"
        /// The task finished: `task`, `taskID`, `exitCode`, `succeeded`.
        case taskFinished = "task-finished"
        /// The agent started: `pid`, `version`.
        case agentStarted = "agent-started"
        /// The agent stopped: `pid`.
        case agentStopped = "agent-stopped"
    }

    /// Why an instance was started again.
    public enum RestartReason: String, Codable, Hashable, Sendable, CaseIterable {
        /// Its process exited on its own.
        case crash
        /// Its service's configuration changed (a new signature).
        case configChange = "config-change"
        /// Its health check failed for longer than its grace period.
        case health
        /// Someone asked for it (`pop restart`).
        case manual
        /// A requirement with the `restart` policy was lost and has come back.
        case requirement
    }

    /// Its number in its journal, from 1.
    public var seq: UInt64
    /// When it happened, in nanoseconds since the epoch.
    public var time: Int64
    /// What happened.
    public var kind: Kind
    /// The service whose instance it concerns; nil for the agent's own events.
    public var service: String?
    public var pid: Int32?
    public var signature: String?
    public var exitCode: Int32?
    public var signal: Int32?
    public var reason: RestartReason?
    public var healthy: Bool?
    public var delayMilliseconds: Int?
    public var task: String?
    public var taskID: String?
    public var succeeded: Bool?
    public var version: String?
    /// A sentence for people: an error, a health check's answer.
    public var detail: String?

    /// Creates an event; the journal gives it its number and, unless given, its time.
    public init(
        _ kind: Kind, service: String?, time: Int64 = 0, pid: Int32? = nil, signature: String? = nil,
        exitCode: Int32? = nil, signal: Int32? = nil, reason: RestartReason? = nil, healthy: Bool? = nil,
        delayMilliseconds: Int? = nil, task: String? = nil, taskID: String? = nil, succeeded: Bool? = nil,
        version: String? = nil, detail: String? = nil
    ) {
        self.seq = 0
        self.time = time
        self.kind = kind
        self.service = service
        self.pid = pid
        self.signature = signature
        self.exitCode = exitCode
        self.signal = signal
        self.reason = reason
        self.healthy = healthy
        self.delayMilliseconds = delayMilliseconds
        self.task = task
        self.taskID = taskID
        self.succeeded = succeeded
        self.version = version
        self.detail = detail
    }

    /// One line for people: `restarted (crash)`, `exited with status 3`, `started pid 4242 (signature 3f2a91c0)`.
    public var summary: String {
        switch kind {
        case .started:
            return "started" + (pid.map { " pid \($0)" } ?? "") + (signature.map { " (signature \($0.prefix(8)))" } ?? "")
        case .exited:
            if let exitCode { return "exited with status \(exitCode)" }
            if let signal {
                let name = StopSignal.allCases.first { $0.number == signal }
                return "killed by signal \(signal)" + (name.map { " (SIG\($0.rawValue))" } ?? "")
            }
            return "exited" + (detail.map { " (\($0))" } ?? "")
        case .restarted:
            return "restarted" + (reason.map { " (\($0.rawValue))" } ?? "")
        case .backoff:
            return "backoff" + (delayMilliseconds.map { " \($0) ms" } ?? "")
        case .fatal:
            return "fatal" + (detail.map { ": \($0)" } ?? "")
        case .health:
            return (healthy == true ? "healthy" : "unhealthy") + (detail.map { ": \($0)" } ?? "")
        case .adopted:
            return "adopted" + (pid.map { " pid \($0)" } ?? "")
        case .stopped:
            return "stopped" + (detail.map { " (\($0))" } ?? "")
        case .taskStarted:
            return "task \(task ?? "?") started" + (taskID.map { " (\($0))" } ?? "")
        case .taskFinished:
            return "task \(task ?? "?") " + (succeeded == true ? "succeeded" : "failed")
                + (exitCode.map { " with status \($0)" } ?? "") + (taskID.map { " (\($0))" } ?? "")
        case .agentStarted:
            return "agent started" + (pid.map { " pid \($0)" } ?? "") + (version.map { " version \($0)" } ?? "")
        case .agentStopped:
            return "agent stopped" + (pid.map { " pid \($0)" } ?? "")
        }
    }
}
