import Foundation
import PopState

/// A snapshot of one supervised instance, published whenever any of it changes.
public struct InstanceStatus: Hashable, Sendable {
    /// The instance's name.
    public var name: ServiceName
    /// The lifecycle state.
    public var state: InstanceState
    /// The process id, while a process (the command, or a setup step) exists.
    public var pid: Int32?
    /// The signature of the configuration the process runs (the desired one while none runs).
    public var signature: ConfigSignature
    /// When the instance entered `state`.
    public var since: Date
    /// When the current process started.
    public var started: Date?
    /// Unexpected exits since the last deliberate (re)start.
    public var restarts: Int
    /// The most recent error, such as "exited with status 3" or a failed setup step.
    public var lastError: String?
    /// The command's last process that ended, and how, once one has.
    public var lastExit: ProcessExit?
    /// What the last health probe of the current process said (nil without a check, or before its first answer).
    public var healthy: Bool?
    /// Why the instance last failed.
    public var lastFailure: Failure?
    /// Why the command was last started again (a crash, its health, a new configuration, or asked for).
    public var lastRestart: LifecycleEvent.RestartReason?

    /// A process that ended, and how.
    public struct ProcessExit: Hashable, Sendable {
        /// Its pid.
        public var pid: Int32
        /// How it ended.
        public var status: ExitStatus

        public init(pid: Int32, status: ExitStatus) {
            self.pid = pid
            self.status = status
        }
    }

    /// Why an instance failed (and, unless FATAL, is started again after a backoff).
    public enum Failure: String, Hashable, Sendable {
        /// Its process exited on its own.
        case exited
        /// It was not healthy within its grace period, and was stopped.
        case unhealthy
        /// A setup step failed.
        case setup
        /// Its process could not be started (no such program, a record that could not be written).
        case notStarted
    }

    /// Creates a snapshot.
    public init(
        name: ServiceName, state: InstanceState, pid: Int32?, signature: ConfigSignature, since: Date,
        started: Date?, restarts: Int, lastError: String?, lastExit: ProcessExit? = nil, healthy: Bool? = nil,
        lastFailure: Failure? = nil, lastRestart: LifecycleEvent.RestartReason? = nil
    ) {
        self.name = name
        self.state = state
        self.pid = pid
        self.signature = signature
        self.since = since
        self.started = started
        self.restarts = restarts
        self.lastError = lastError
        self.lastExit = lastExit
        self.healthy = healthy
        self.lastFailure = lastFailure
        self.lastRestart = lastRestart
    }

    /// The record the agent publishes in the store for this instance on `machine`.
    public func record(machine: MachineID) -> InstanceRecord {
        InstanceRecord(
            machine: machine, pid: pid, signature: signature, state: state, since: since, started: started,
            restarts: restarts, lastError: lastError, lastRestart: lastRestart)
    }
}
