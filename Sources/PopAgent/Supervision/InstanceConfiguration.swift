import PopState

/// Everything the supervisor needs to run one instance, with every placeholder already substituted.
///
/// The supervisor knows nothing of templates or the store: the reconciler builds this from a ``ServiceSpec``.
public struct InstanceConfiguration: Hashable, Sendable, Codable {
    /// The instance's name (one instance per service on a machine).
    public var name: ServiceName
    /// The signature of the configuration this instance runs; a different one means a restart.
    public var signature: ConfigSignature
    /// The command's argv. The first element is resolved through `PATH` from ``environment`` unless it has a `/`.
    public var command: [String]
    /// The complete environment of the process (nothing is inherited from the agent).
    public var environment: [String: String]
    /// The folder the command and setup steps run in.
    public var workingDirectory: String
    /// The folder for `stdout.log`, `stderr.log` and `setup.log`.
    public var logDirectory: String
    /// The folder holding the local record (`instance.json`) that lets a later agent adopt the process.
    public var stateDirectory: String
    /// Steps run in order in the working folder before the command; one whose `creates` path exists is skipped.
    public var setup: [SetupStep]
    /// The signal that asks the process group to stop.
    public var stopSignal: StopSignal
    /// How long to wait after the stop signal before SIGKILL to the whole process group.
    public var stopTimeoutMilliseconds: Int
    /// An optional health check; without one the instance is running as soon as it is spawned.
    public var health: HealthProbe?
    /// How unexpected exits are restarted.
    public var restartPolicy: RestartPolicy
    /// How log files are kept bounded.
    public var logRotation: LogRotation

    /// Creates a configuration.
    public init(
        name: ServiceName, signature: ConfigSignature, command: [String], environment: [String: String],
        workingDirectory: String, logDirectory: String, stateDirectory: String, setup: [SetupStep] = [],
        stopSignal: StopSignal = .term, stopTimeoutMilliseconds: Int = 10_000, health: HealthProbe? = nil,
        restartPolicy: RestartPolicy = RestartPolicy(), logRotation: LogRotation = LogRotation()
    ) {
        self.name = name
        self.signature = signature
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.logDirectory = logDirectory
        self.stateDirectory = stateDirectory
        self.setup = setup
        self.stopSignal = stopSignal
        self.stopTimeoutMilliseconds = stopTimeoutMilliseconds
        self.health = health
        self.restartPolicy = restartPolicy
        self.logRotation = logRotation
    }

    /// The parameters the state machine decides with.
    var machineParameters: InstanceStateMachine.Parameters {
        InstanceStateMachine.Parameters(
            setupSteps: setup.count,
            health: health.map {
                .init(
                    interval: .milliseconds($0.intervalMilliseconds), gracePeriod: .milliseconds($0.gracePeriodMilliseconds))
            },
            stopSignal: stopSignal, stopTimeout: .milliseconds(stopTimeoutMilliseconds), restart: restartPolicy)
    }
}
