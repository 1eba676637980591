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
        _superCommandName: "pop",
        abstract: "Run this machine's agent in the foreground, logging to standard error.",
        discussion: """
            SIGTERM or SIGINT stops the agent gracefully; its services keep running (unless \
            --stop-instances-on-exit), and the next agent adopts them. `pop start` runs this in the background.

            Beside the agent runs its endpoint, which serves this machine's logs, events, resources and metrics to \
            holders of the namespace's credentials (docs/observability.md). --listen HOST:PORT (`:PORT` for every \
            address) says where; by default every address on port 7676 on ZooKeeper (another free port when that \
            one is taken), and a unix socket in pop's private home on the embedded store, where only loopback \
            addresses are accepted. The address is published in the machine record.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Flag(name: .customLong("stop-instances-on-exit"), help: "Stop every instance when the agent exits.")
    var stopInstancesOnExit = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("label"), help: ArgumentHelp("Label this machine when the agent starts (repeatable).", valueName: "key=value"))
    var labels: [String] = []

    @Option(
        name: .customLong("session-timeout"),
        help: ArgumentHelp(
            "Seconds the store waits without hearing from this agent before it ends the agent's session and counts the machine as gone (\(SessionTimeout.range.lowerBound) to \(SessionTimeout.range.upperBound)). The agent's heartbeats come three times per timeout: a longer one costs the ensemble fewer, and finds a lost machine later (docs/multi-machine.md).",
            valueName: "seconds"))
    var sessionTimeout: Int = SessionTimeout.standard

    @Option(name: .customLong("ready-fd"), help: .hidden)
    var readyDescriptor: Int32?

    @Option(
        name: .long,
        help: ArgumentHelp("Where the endpoint listens: HOST:PORT, [IPv6]:PORT, or :PORT for every address.", valueName: "address"))
    var listen: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Serve the endpoint over HTTPS with this PEM certificate chain.", valueName: "file"))
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    func validate() throws {
        try SessionTimeout.validate(sessionTimeout)
        if let listen, EndpointAddress.hostAndPort(Substring(listen), defaultPort: nil) == nil {
            throw ValidationError("--listen \(listen) is not HOST:PORT (for example 0.0.0.0:7676, [::1]:7676 or :7676).")
        }
        if (tlsCertificate == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together: give both, or neither.")
        }
    }

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
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw PopError(.invalidInput, "Unknown log level '\(logLevel)'.",
                hint: "Use one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        let labels = try MachineLabel.parse(self.labels)
        let environment = CommandEnvironment.variables
        let home = try PopHome(environment: environment)
        let machine = try MachineIdentity.current(environment: environment)
        let storeConfiguration = try StoreConfiguration(
            host: global.host, prefix: global.prefix, environment: environment, home: home)
        try home.ensurePrivateFolder(home.machineFolder(machine))
        let pidFile = try AgentPidFile.acquire(path: home.agentPIDFile(machine), machine: machine)
        defer { pidFile.release() }

        var logger = Logger(label: "pop.agent")
        logger.logLevel = level
        let listening = try endpointListen(storeConfiguration, home: home, machine: machine)
        let journal = MachineJournal(home: home, machine: machine, version: Pop.version)
        let (addresses, announce) = AsyncStream<EndpointAddress>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let endpoint = AgentEndpoint(
            configuration: AgentEndpoint.Configuration(
                listen: listening,
                tls: tlsCertificate.map { AgentEndpoint.Configuration.TLSFiles(certificate: $0, key: tlsKey ?? "") }),
            home: home, machine: machine, journal: journal,
            access: EndpointAccess(
                credentials: storeConfiguration.credentials, key: nil,
                refresh: { await Self.readEndpointKey(storeConfiguration) }),
            logger: logger,
            onListening: { address in
                announce.yield(AgentEndpoint.published(address))
                announce.finish()
            })
        var agentConfiguration = AgentConfiguration(
            machine: machine, home: home, prefix: storeConfiguration.prefix, environment: environment,
            agentVersion: Pop.version, stopInstancesOnShutdown: stopInstancesOnExit)
        agentConfiguration.labels = labels
        let agent = try Agent(
            configuration: agentConfiguration,
            openStore: { [sessionTimeout] in
                try await openStore(storeConfiguration, sessionTimeout: .seconds(sessionTimeout))
            },
            logger: logger,
            journal: journal,
            endpoint: { await addresses.first { _ in true } },
            onReady: { _ in readiness?.ready() })
        logger.info(
            "agent starting",
            metadata: ["machine": "\(machine)", "store": "\(storeConfiguration)", "pid": "\(getpid())"])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [agent, endpoint], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Where the endpoint listens: `--listen`, else the default of the store (see the discussion).
    private func endpointListen(
        _ store: StoreConfiguration, home: PopHome, machine: MachineID
    ) throws -> AgentEndpoint.Configuration.Listen {
        let embedded: Bool
        switch store.kind {
        case .embedded: embedded = true
        case .zooKeeper: embedded = false
        }
        guard let listen else {
            if embedded { return .unix(path: home.machineFolder(machine) + "/agent.sock") }
            return .tcp(host: "0.0.0.0", port: EndpointAddress.defaultPort, anyPortWhenTaken: true)
        }
        // Checked by validate().
        let (host, port) = EndpointAddress.hostAndPort(Substring(listen), defaultPort: nil)!
        if embedded && !["127.0.0.1", "::1", "localhost"].contains(host) && !host.hasPrefix("127.") {
            throw PopError(
                .invalidInput, "--listen \(listen): on the embedded store the endpoint listens on loopback only.",
                hint: "Use 127.0.0.1:PORT or [::1]:PORT, or leave --listen out for a unix socket in pop's home.")
        }
        return .tcp(host: host, port: port, anyPortWhenTaken: false)
    }

    /// The namespace's endpoint key, read in a short session of its own (on a refused signature, at most every few
    /// seconds: see ``EndpointAccess``).
    static func readEndpointKey(_ configuration: StoreConfiguration) async -> EndpointKey? {
        guard let namespace = try? await openNamespace(configuration) else { return nil }
        let key = try? await namespace.endpointKey()
        await namespace.store.close()
        return key
    }
}
