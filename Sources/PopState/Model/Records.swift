import Foundation

/// A registered machine, published by its agent as an ephemeral node.
public struct MachineRecord: Hashable, Sendable, Codable {
    /// The machine's id.
    public var id: MachineID
    /// The host name.
    public var hostname: String
    /// The machine's non-loopback addresses (loopback ones when it has no other).
    public var addresses: [String]
    /// The agent's version.
    public var agentVersion: String
    /// When the agent started.
    public var started: Date
    /// The agent's process id on that machine.
    public var agentPID: Int32
    /// Where the agent serves this machine's logs, events and metrics (an ``EndpointAddress``), when it does.
    public var endpoint: String?

    /// Creates a machine record.
    public init(
        id: MachineID, hostname: String, addresses: [String], agentVersion: String, started: Date, agentPID: Int32,
        endpoint: String? = nil
    ) {
        self.id = id
        self.hostname = hostname
        self.addresses = addresses
        self.agentVersion = agentVersion
        self.started = started
        self.agentPID = agentPID
        self.endpoint = endpoint
    }
}

/// The lifecycle state of one instance (one service on one machine).
public enum InstanceState: String, Hashable, Sendable, Codable, CaseIterable {
    /// Setup steps or pip are running.
    case installing
    /// The process runs but has not yet passed its health check.
    case starting
    /// The process runs (and is healthy, if the template has a check).
    case running
    /// The process exited unexpectedly and waits to be restarted.
    case backoff
    /// The stop signal has been sent.
    case stopping
    /// Not running, by request.
    case stopped
    /// Failed repeatedly; left alone until `pop restart` or a config change.
    case fatal
    /// Not started (or stopped by a requirement's `stop` policy) until its requirements are met; `lastError` says
    /// which (`db: not healthy`).
    case waiting
}

/// What an agent publishes about one instance: the seed's "for each machine a PID, for each PID a signature".
public struct InstanceRecord: Hashable, Sendable, Codable {
    /// The machine running the instance.
    public var machine: MachineID
    /// The process id, while a process exists.
    public var pid: Int32?
    /// The signature of the configuration the process runs.
    public var signature: ConfigSignature
    /// The lifecycle state.
    public var state: InstanceState
    /// When the instance entered `state`.
    public var since: Date
    /// When the current process started.
    public var started: Date?
    /// Unexpected exits since the last deliberate (re)start.
    public var restarts: Int
    /// The most recent error, such as an exit status or a failed setup step.
    public var lastError: String?
    /// Why the instance was last started again (its journal has the whole story).
    public var lastRestart: LifecycleEvent.RestartReason?

    /// Creates an instance record.
    public init(
        machine: MachineID, pid: Int32?, signature: ConfigSignature, state: InstanceState, since: Date,
        started: Date? = nil, restarts: Int = 0, lastError: String? = nil, lastRestart: LifecycleEvent.RestartReason? = nil
    ) {
        self.machine = machine
        self.pid = pid
        self.signature = signature
        self.state = state
        self.since = since
        self.started = started
        self.restarts = restarts
        self.lastError = lastError
        self.lastRestart = lastRestart
    }
}

/// A `pop run` request, stored under the service so every agent running it sees it.
public struct TaskRequest: Hashable, Sendable, Codable {
    /// The task's name.
    public var task: String
    /// The arguments, each handed to the task as one argv element.
    public var arguments: [String]
    /// The machines asked to run it.
    public var machines: [MachineID]
    /// At most this many machines run it at once (1 for a rolling upgrade); `nil` means all at once.
    public var maxParallel: Int?
    /// When the request was made.
    public var created: Date
    /// How long the requester waits for results.
    public var timeoutMilliseconds: Int

    /// Creates a task request.
    public init(
        task: String, arguments: [String], machines: [MachineID], maxParallel: Int? = nil, created: Date,
        timeoutMilliseconds: Int
    ) {
        self.task = task
        self.arguments = arguments
        self.machines = machines
        self.maxParallel = maxParallel
        self.created = created
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// One machine's result for a task request.
public struct TaskResult: Hashable, Sendable, Codable {
    /// Where the task stands on that machine.
    public enum State: String, Hashable, Sendable, Codable {
        case running, succeeded, failed
    }

    /// The machine that ran the task.
    public var machine: MachineID
    /// Where the task stands.
    public var state: State
    /// The exit code, once finished.
    public var exitCode: Int32?
    /// Combined stdout and stderr (truncated to a bounded size).
    public var output: String
    /// When the machine started the task.
    public var started: Date
    /// When it finished.
    public var finished: Date?
    /// Why it could not run, if it could not.
    public var error: String?

    /// Creates a task result.
    public init(
        machine: MachineID, state: State, exitCode: Int32? = nil, output: String = "", started: Date,
        finished: Date? = nil, error: String? = nil
    ) {
        self.machine = machine
        self.state = state
        self.exitCode = exitCode
        self.output = output
        self.started = started
        self.finished = finished
        self.error = error
    }
}

extension InstanceRecord {
    /// The record as ``PopJSON/canonicalEncoder()`` writes it, built directly: an agent writes one at each change of
    /// each of its instances.
    public var canonicalJSON: [UInt8] {
        var json = JSONObjectWriter()
        json.field("lastError", lastError)
        json.field("lastRestart", lastRestart?.rawValue)
        json.field("machine", machine.rawValue)
        json.field("pid", pid.map(Int64.init))
        json.field("restarts", Int64(restarts))
        json.field("signature", signature.hex)
        json.field("since", since)
        json.field("started", started)
        json.field("state", state.rawValue)
        return json.finish()
    }
}
