import ArgumentParser
import Foundation
import Logging
import PopAgent
import PopState
import ServiceLifecycle

/// `pop fg`: runs this machine's agent in the foreground, logging to standard error.
struct Foreground: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fg",
        abstract: "Run this machine's agent in the foreground, logging to standard error.",
        discussion: """
            SIGTERM or SIGINT stops the agent gracefully; its services keep running (unless \
            --stop-instances-on-exit), and the next agent adopts them. `pop start` runs this in the background.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Flag(name: .customLong("stop-instances-on-exit"), help: "Stop every instance when the agent exits.")
    var stopInstancesOnExit = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("label"), help: ArgumentHelp("Label this machine when the agent starts (repeatable).", valueName: "key=value"))
    var labels: [String] = []

    @Option(name: .customLong("ready-fd"), help: .hidden)
    var readyDescriptor: Int32?

    func run() async throws {
        let readiness = readyDescriptor.map { AgentReadiness(fd: $0) }
        do {
            try await runAgent(readiness)
        } catch {
            readiness?.failed((error as? PopError)?.description ?? "\(error)")
            throw error
        }
    }

    /// The log level asked for, or nil when it is not one (reported by run()).
    var level: Logger.Level? { Logger.Level(rawValue: logLevel) }

    private func runAgent(_ readiness: AgentReadiness?) async throws {
        MemoryRelease.limitArenas()
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw PopError(.invalidInput, "Unknown log level '\(logLevel)'.",
                hint: "Use one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        let labels = try MachineLabel.parse(self.labels)
        let environment = ProcessInfo.processInfo.environment
        let home = try PopHome(environment: environment)
        let machine = try MachineIdentity.current(environment: environment)
        let storeConfiguration = try StoreConfiguration(
            host: global.host, prefix: global.prefix, environment: environment, home: home)
        try home.ensurePrivateFolder(home.machineFolder(machine))
        let pidFile = try AgentPidFile.acquire(path: home.agentPIDFile(machine), machine: machine)
        defer { pidFile.release() }

        var logger = Logger(label: "pop.agent")
        logger.logLevel = level
        var agentConfiguration = AgentConfiguration(
            machine: machine, home: home, prefix: storeConfiguration.prefix, environment: environment,
            agentVersion: Pop.version, stopInstancesOnShutdown: stopInstancesOnExit)
        agentConfiguration.labels = labels
        let agent = try Agent(
            configuration: agentConfiguration,
            openStore: { try await openStore(storeConfiguration) },
            logger: logger,
            onReady: { _ in readiness?.ready() })
        logger.info(
            "agent starting",
            metadata: ["machine": "\(machine)", "store": "\(storeConfiguration)", "pid": "\(getpid())"])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [agent], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
