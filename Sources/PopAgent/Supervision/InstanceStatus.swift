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

    /// Creates a snapshot.
    public init(
        name: ServiceName, state: InstanceState, pid: Int32?, signature: ConfigSignature, since: Date,
        started: Date?, restarts: Int, lastError: String?
    ) {
        self.name = name
        self.state = state
        self.pid = pid
        self.signature = signature
        self.since = since
        self.started = started
        self.restarts = restarts
        self.lastError = lastError
    }

    /// The record the agent publishes in the store for this instance on `machine`.
    public func record(machine: MachineID) -> InstanceRecord {
        InstanceRecord(
            machine: machine, pid: pid, signature: signature, state: state, since: since, started: started,
            restarts: restarts, lastError: lastError)
    }
}
