import Foundation
import Synchronization
import TestProcesses

/// One simulated machine: a machine id, its own pop home, and the network namespace (own address) it runs in.
///
/// Several machines may share a host namespace (the scale benchmark does); normally each has its own.
public final class ClusterMachine: Sendable {
    /// The machine id (`POP_MACHINE_ID`).
    public let id: String
    /// The network namespace its commands and agent run in; nil for the root namespace.
    public let namespace: String?
    /// Its address on the cluster's bridge.
    public let address: String
    /// Its pop home (`POP_HOME`).
    public let home: URL
    /// The folder holding its home and logs.
    public let folder: URL
    /// The ZooKeeper connect string its commands use (`POP_HOST`).
    public let host: String
    let popBinary: String
    private let agents = Mutex<[ClusterAgent]>([])

    init(id: String, namespace: String?, address: String, folder: URL, host: String, popBinary: String) throws {
        self.id = id
        self.namespace = namespace
        self.address = address
        self.folder = folder
        self.home = folder.appendingPathComponent("home")
        self.host = host
        self.popBinary = popBinary
        try FileManager.default.createDirectory(at: self.home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// pop's variables for this machine, in the order `env` gets them.
    public var popEnvironment: [(String, String)] {
        [("POP_HOME", self.home.path), ("POP_MACHINE_ID", self.id), ("POP_HOST", self.host), ("NO_COLOR", "1")]
    }

    /// The argv that runs `arguments` (a program and its arguments) in this machine's namespace with pop's variables.
    public func argv(_ arguments: [String], environment: [(String, String)] = []) -> [String] {
        let variables = (self.popEnvironment + environment).map { "\($0.0)=\($0.1)" }
        guard let namespace = self.namespace else { return ["env"] + variables + arguments }
        return IPTool.inNamespace(namespace, ["env"] + variables + arguments)
    }

    /// Runs `pop ARGUMENTS` on this machine and waits for it.
    @discardableResult
    public func pop(
        _ arguments: [String], environment: [(String, String)] = [], timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        var result = try await self.exec([self.popBinary] + arguments, environment: environment, timeout: timeout)
        result.arguments = ["pop"] + arguments
        return result
    }

    /// Runs `pop ARGUMENTS` on this machine and throws unless it exits 0.
    @discardableResult
    public func popOK(
        _ arguments: [String], environment: [(String, String)] = [], timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        try await self.pop(arguments, environment: environment, timeout: timeout).check()
    }

    /// Runs any program on this machine (in its namespace, with pop's variables) and waits for it.
    @discardableResult
    public func exec(
        _ arguments: [String], environment: [(String, String)] = [], timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        try await CommandRunner.run(
            self.argv(arguments, environment: environment), environment: CommandRunner.baseEnvironment(),
            scratch: self.folder, timeout: timeout, shown: arguments)
    }

    /// Starts a long-running program on this machine, in its own process group, output under the machine's folder.
    public func spawn(_ arguments: [String], environment: [(String, String)] = [], logName: String) throws -> ChildProcess {
        let log = self.folder.appendingPathComponent(logName)
        return try ChildProcess(
            self.argv(arguments, environment: environment), environment: CommandRunner.baseEnvironment(), stdout: .file(log),
            stderr: .file(log))
    }

    /// Starts this machine's agent (`pop fg`) and returns once it has registered the machine.
    @discardableResult
    public func startAgent(
        arguments: [String] = [], environment: [(String, String)] = [], readyTimeout: Duration = .seconds(60)
    ) async throws -> ClusterAgent {
        // An agent that no ensemble member answers within its connect timeout exits (docs/agent.md, the first
        // session). On a loaded test machine a freshly started ensemble can take longer than that to answer several
        // agents' first sessions at once, so such an agent is started again, at most twice, saying so.
        var attempt = 1
        while true {
            let number = self.agents.withLock { $0.count + 1 }
            let log = self.folder.appendingPathComponent("agent-\(number)\(attempt > 1 ? "-attempt\(attempt)" : "").log")
            let process = try ChildProcess(
                self.argv([self.popBinary, "fg", "--ready-fd", "3"] + arguments, environment: environment),
                environment: CommandRunner.baseEnvironment(),
                stdout: .file(log), stderr: .file(log), readyPipe: true)
            let agent = ClusterAgent(machineID: self.id, process: process, logFile: log)
            self.agents.withLock { $0.append(agent) }
            do {
                try await agent.waitUntilReady(timeout: readyTimeout)
                return agent
            } catch let error as ClusterError
                where attempt < 3 && error.message.contains("no ZooKeeper server answered within the connect timeout")
            {
                print("the agent of machine \(self.id) found no ensemble member answering within its connect timeout; starting it again")
                self.agents.withLock { agents in agents.removeAll { $0 === agent } }
                attempt += 1
            }
        }
    }

    /// The agent started last, if any.
    public var agent: ClusterAgent? { self.agents.withLock { $0.last } }

    /// Every agent started on this machine, oldest first.
    public var allAgents: [ClusterAgent] { self.agents.withLock { $0 } }
}
