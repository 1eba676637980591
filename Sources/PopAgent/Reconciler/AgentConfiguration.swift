import PopState

/// How an ``Agent`` runs: which machine it is, where its files go, and how it treats its instances.
public struct AgentConfiguration: Sendable {
    /// This machine's id.
    public var machine: MachineID
    /// pop's home folder: the agent's instance folders live under `machines/<id>/instances/`.
    public var home: PopHome
    /// The namespace prefix in the store, such as `/pop`.
    public var prefix: String
    /// The environment the agent was started with; instances get its `PATH`, `HOME`, `LANG`, `LC_*`, `TZ`, `USER`,
    /// `LOGNAME` and `TMPDIR` (and nothing else from it).
    public var environment: [String: String]
    /// The agent's version, published with the machine record.
    public var agentVersion: String
    /// Stop every instance when the agent shuts down (by default they keep running and the next agent adopts them).
    public var stopInstancesOnShutdown: Bool
    /// How unexpected exits of instances are restarted.
    public var restartPolicy: RestartPolicy
    /// How instance log files are kept bounded.
    public var logRotation: LogRotation
    /// The longest wait between attempts to reach the store again.
    public var maximumRetryDelay: Duration
    /// How many bytes of a task's output its result keeps (the end of it).
    public var taskOutputLimit: Int
    /// How the agent follows the store: `nil` (the default) follows only what concerns this machine on a store shared
    /// by many machines, and the whole namespace with one subtree watch on a store whose clients all run on this
    /// machine (``CoordinationStore/isMachineLocal``); `true` or `false` forces one way.
    public var followsWholeNamespace: Bool? = nil
    /// Labels this machine gets when the agent starts (`pop fg --label zone=a`), kept in its persistent facts.
    public var labels: [String: String] = [:]
    /// Whether the agent stands in the scheduler's election (the elected one places services deployed by count).
    public var schedules: Bool = true

    /// Creates a configuration.
    public init(
        machine: MachineID, home: PopHome, prefix: String = "/pop", environment: [String: String],
        agentVersion: String, stopInstancesOnShutdown: Bool = false, restartPolicy: RestartPolicy = RestartPolicy(),
        logRotation: LogRotation = LogRotation(), maximumRetryDelay: Duration = .seconds(10),
        taskOutputLimit: Int = 64 * 1024
    ) {
        self.machine = machine
        self.home = home
        self.prefix = prefix
        self.environment = environment
        self.agentVersion = agentVersion
        self.stopInstancesOnShutdown = stopInstancesOnShutdown
        self.restartPolicy = restartPolicy
        self.logRotation = logRotation
        self.maximumRetryDelay = maximumRetryDelay
        self.taskOutputLimit = taskOutputLimit
    }

    /// The variables every instance starts from.
    public var instanceBaseEnvironment: [String: String] {
        let kept: Set<String> = ["PATH", "HOME", "LANG", "TZ", "USER", "LOGNAME", "TMPDIR"]
        var base = environment.filter { kept.contains($0.key) || $0.key.hasPrefix("LC_") }
        if base["PATH"] == nil { base["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
        return base
    }

    /// The folder of this machine's instance of `service`: the instance's working folder.
    public func instanceDirectory(_ service: ServiceName) -> String {
        home.instanceFolder(machine, service)
    }

    /// The folder of the instance's log files (`stdout.log`, `stderr.log`, `setup.log`).
    public func logDirectory(_ service: ServiceName) -> String {
        instanceDirectory(service) + "/logs"
    }

    /// The folder of the instance's local records (what lets a later agent adopt it).
    public func stateDirectory(_ service: ServiceName) -> String {
        instanceDirectory(service) + "/.pop"
    }
}
