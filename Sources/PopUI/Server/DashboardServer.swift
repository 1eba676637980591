import Foundation
import Hummingbird
import Logging
import NIOCore
import PopFleetClient
import PopState
import ServiceLifecycle

/// `pop ui`'s web server: the page, the fleet as server-sent events, the service and instance views and the
/// actions, on one address (loopback by default).
public final class DashboardServer: Service, Sendable {
    /// How the dashboard is set up.
    public struct Configuration: Sendable {
        /// The address to listen on (`127.0.0.1` by default).
        public var host: String
        /// The port; 0 lets the system choose.
        public var port: Int
        /// How people prove they hold the namespace's credentials.
        public var login: DashboardLogin
        /// pop's home on this host, where the embedded store's journals are.
        public var home: PopHome?

        /// Creates a configuration.
        public init(host: String = "127.0.0.1", port: Int = 0, login: DashboardLogin, home: PopHome?) {
            self.host = host
            self.port = port
            self.login = login
            self.home = home
        }
    }

    private let namespace: PopNamespace
    private let configuration: Configuration
    private let logger: Logger
    private let onListening: @Sendable (String) async -> Void
    /// The store follower, shared by every open page.
    public let feed: FleetFeed

    /// A dashboard of `namespace`; `onListening` gets its address (`http://127.0.0.1:PORT`) once it listens.
    public init(
        namespace: PopNamespace, configuration: Configuration, logger: Logger,
        onListening: @escaping @Sendable (String) async -> Void
    ) {
        self.namespace = namespace
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
        feed = FleetFeed(
            namespace: namespace, logger: logger,
            resources: { model, records in
                await FleetResources.gather(model.processes, records: records, namespace: namespace)
            })
    }

    /// Serves until the service group shuts down.
    public func run() async throws {
        let address = ListenAddress(host: configuration.host, port: configuration.port)
        let routes = DashboardRoutes(
            namespace: namespace, feed: feed, login: configuration.login, sessions: DashboardSessions(),
            address: address, assets: try PageAssets(), journals: AgentJournals(namespace: namespace, home: configuration.home),
            logger: logger)
        let onListening = self.onListening
        let application = Application(
            router: routes.router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            services: [feed],
            onServerRunning: { channel in
                if let port = channel.localAddress?.port { address.port = port }
                await onListening(address.url)
            },
            logger: logger)
        try await application.run()
    }
}
