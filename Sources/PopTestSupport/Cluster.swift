import Foundation
import Logging
import PopState
import TestProcesses
import ZooKeeperTestSupport

/// A pop cluster on one host: a 3-member ZooKeeper ensemble on a bridge, and machines that each live in their own
/// network namespace with their own address, machine id and pop home, so the same port can be used on every one.
///
/// Prefer the scoped `withCluster { cluster in … }`, which tears everything down also when the body throws. A
/// cluster left by a crashed run is torn down by the next cluster started on the host.
public final class Cluster: Sendable {
    /// How to build a cluster.
    public struct Options: Sendable {
        /// How many machines.
        public var machines: Int = 3
        /// How many machines share one network namespace (1: every machine is its own host).
        public var machinesPerHost: Int = 1
        /// How many ZooKeeper members.
        public var ensembleSize: Int = 3
        /// The ensemble's options; the harness sets `bindAddress` to the bridge's address.
        public var zooKeeper: ZooKeeperServer.Options = ZooKeeperServer.Options()
        /// Run `pop init` (from the first machine) once everything is up.
        public var initialize: Bool = true
        /// The `pop` executable (default: found next to this executable, or `POP_BINARY`).
        public var popBinary: String?
        /// The folder the cluster's scratch folder (machine homes, logs) is made in; the temporary folder by default.
        /// The ZooKeeper members' data stays in the temporary folder whatever this says.
        public var scratchParent: String?

        /// Three machines, each its own host, on a 3-member ensemble with tickTime 500 ms.
        public init() {}
    }

    /// The cluster's network: bridge, namespaces, addresses, and the name everything is created under.
    public let network: ClusterNetwork
    /// The ZooKeeper ensemble, listening on the bridge's address.
    public let ensemble: ZooKeeperEnsemble
    /// The machines, `m1`, `m2`, …
    public let machines: [ClusterMachine]
    /// The cluster's scratch folder (machine homes, logs).
    public let folder: URL
    /// pop run from the root namespace, as an operator's workstation would.
    public let operatorMachine: ClusterMachine
    /// The `pop` executable.
    public let popBinary: String

    /// The ensemble's connect string, every member: `198.18.N.1:port,…`.
    public var host: String { self.ensemble.connectString }

    private init(
        network: ClusterNetwork, ensemble: ZooKeeperEnsemble, machines: [ClusterMachine], folder: URL,
        operatorMachine: ClusterMachine, popBinary: String
    ) {
        self.network = network
        self.ensemble = ensemble
        self.machines = machines
        self.folder = folder
        self.operatorMachine = operatorMachine
        self.popBinary = popBinary
    }

    /// Waits (up to a minute each) until every member has created a client session, so that a test does not spend
    /// the 5 s connect timeout of its first command or agent on an ensemble that reports a leader but does not create
    /// sessions yet: on a loaded host a cluster's first command has found no member answering its handshake.
    static func waitUntilEveryMemberServes(_ ensemble: ZooKeeperEnsemble) async throws {
        var logger = Logger(label: "pop.test.cluster")
        logger.logLevel = .critical
        for member in ensemble.members {
            let store = try await ZooKeeperStore.open(
                servers: [StoreConfiguration.Server(host: member.host, port: member.clientPort)], chroot: nil,
                connectTimeout: .seconds(60), logger: logger)
            await store.close()
        }
    }

    /// Builds the network, starts the ensemble and prepares the machines (no agent runs yet).
    public static func start(_ options: Options = Options()) async throws -> Cluster {
        precondition(options.machines >= 1 && options.machinesPerHost >= 1, "a cluster needs at least one machine")
        let popBinary = try options.popBinary ?? PopBinary.locate()
        let network = try await ClusterNetwork.allocate()
        let folder = URL(fileURLWithPath: options.scratchParent ?? NSTemporaryDirectory())
            .appendingPathComponent("pop-test-clusters/\(network.name)")
        var ensemble: ZooKeeperEnsemble?
        do {
            try? FileManager.default.removeItem(at: folder)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let hosts = (options.machines + options.machinesPerHost - 1) / options.machinesPerHost
            try await network.create(hosts: hosts)
            var zooKeeper = options.zooKeeper
            zooKeeper.bindAddress = network.bridgeAddress
            let started = try await ZooKeeperEnsemble.start(size: options.ensembleSize, options: zooKeeper)
            ensemble = started
            try await Self.waitUntilEveryMemberServes(started)
            let machines = try (1...options.machines).map { number in
                let hostNumber = (number - 1) / options.machinesPerHost + 1
                return try ClusterMachine(
                    id: "m\(number)", namespace: network.namespace(hostNumber), address: network.address(hostNumber),
                    folder: folder.appendingPathComponent("m\(number)"), host: started.connectString, popBinary: popBinary)
            }
            let operatorMachine = try ClusterMachine(
                id: "operator", namespace: nil, address: network.bridgeAddress, folder: folder.appendingPathComponent("operator"),
                host: started.connectString, popBinary: popBinary)
            let cluster = Cluster(
                network: network, ensemble: started, machines: machines, folder: folder, operatorMachine: operatorMachine,
                popBinary: popBinary)
            if options.initialize {
                try await machines[0].popOK(["init"])
            }
            return cluster
        } catch {
            await network.tearDown()
            await ensemble?.stop()
            network.release()
            try? FileManager.default.removeItem(at: folder)
            throw error
        }
    }

    /// Cuts a machine off the bridge (`ip link set <veth> down` on its host end), or puts it back: its processes
    /// keep running but reach nobody, as in a network partition.
    public func setLink(of machine: ClusterMachine, up: Bool) async throws {
        guard let number = (1...self.machines.count).first(where: { self.network.namespace($0) == machine.namespace }) else {
            throw ClusterError("machine \(machine.id) has no namespace of its own")
        }
        try await IPTool.run(["link", "set", self.network.hostVeth(number), up ? "up" : "down"])
    }

    /// Kills every process in a machine's namespace (its agent and its instances), as when the machine dies.
    public func killProcesses(of machine: ClusterMachine) async {
        guard let namespace = machine.namespace else { return }
        await IPTool.killProcesses(in: namespace)
    }

    /// Kills every process in the machines' namespaces (agents, instances, tasks), deletes the namespaces, the veth
    /// pairs and the bridge, stops the ensemble, and removes the scratch folder.
    public func stop() async {
        await self.network.tearDown()
        for machine in self.machines {
            for agent in machine.allAgents { await agent.process.waitForExit() }
        }
        await self.ensemble.stop()
        self.network.release()
        try? FileManager.default.removeItem(at: self.folder)
    }

    /// The machine with id `id`.
    public func machine(_ id: String) -> ClusterMachine? {
        self.machines.first { $0.id == id }
    }

    /// Runs `pop ARGUMENTS` from the root namespace (an operator's workstation) and waits for it.
    @discardableResult
    public func pop(
        _ arguments: [String], environment: [(String, String)] = [], timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        try await self.operatorMachine.pop(arguments, environment: environment, timeout: timeout)
    }

    /// Runs `pop ARGUMENTS` from the root namespace and throws unless it exits 0.
    @discardableResult
    public func popOK(
        _ arguments: [String], environment: [(String, String)] = [], timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        try await self.operatorMachine.popOK(arguments, environment: environment, timeout: timeout)
    }

    /// Starts every machine's agent, all at once, and returns once each has registered.
    public func startAgents() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for machine in self.machines {
                group.addTask { try await machine.startAgent() }
            }
            try await group.waitForAll()
        }
    }

    /// The end of every agent's log and of the leader's ZooKeeper log, for a failure report.
    public func diagnostics(lines: Int = 25) -> String {
        var report = "cluster \(self.network.name), ZooKeeper \(self.host)\n"
        for machine in self.machines {
            for agent in machine.allAgents {
                report += "--- agent \(machine.id) pid \(agent.pid) (\(agent.isRunning ? "running" : "exited")) \(agent.logFile.path)\n"
                report += agent.logTail(lines: lines) + "\n"
            }
        }
        return report
    }
}

/// Runs `body` with a fresh cluster and tears the cluster down afterwards, also when `body` throws (printing the
/// agents' logs first, to explain the failure).
public func withCluster<T>(_ options: Cluster.Options = Cluster.Options(), _ body: (Cluster) async throws -> T) async throws -> T {
    let cluster = try await Cluster.start(options)
    do {
        let result = try await body(cluster)
        await cluster.stop()
        return result
    } catch {
        FileHandle.standardError.write(Data(cluster.diagnostics().utf8))
        await cluster.stop()
        throw error
    }
}
