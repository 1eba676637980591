import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PopState
import ServiceLifecycle
import Synchronization

/// The agent's endpoint: serves this machine's logs, lifecycle events, resources and metrics over HTTP (Hummingbird),
/// to holders of the namespace's credentials only (``EndpointAccess``).
///
/// | path | answer |
/// |---|---|
/// | `GET /logs?service=S&...` | journal frames (``JournalFrame``) of S's instance: its lines, and events with `events=1` |
/// | `GET /events?...` | journal frames of the events of one instance (`service=S`) or of every instance and the agent |
/// | `GET /resources[?service=S]` | a ``ResourceReport`` (JSON): CPU and memory per instance |
/// | `GET /metrics` | Prometheus text format (``AgentMetrics``) |
///
/// It is a `Service` run beside the agent in `pop fg`; a follow ends when its client goes away or the agent shuts
/// down. Nothing is read or sampled while no request comes.
public struct AgentEndpoint: Service {
    /// Where and how the endpoint listens.
    public struct Configuration: Sendable {
        /// Where to listen.
        public enum Listen: Sendable, Hashable {
            /// A TCP address; with `anyPortWhenTaken`, another port when this one is taken (the default address of
            /// several agents on one host).
            case tcp(host: String, port: Int, anyPortWhenTaken: Bool)
            /// A unix socket (in a private folder).
            case unix(path: String)
        }

        /// A certificate chain and private key (PEM files) for TLS.
        public struct TLSFiles: Sendable, Hashable {
            public var certificate: String
            public var key: String

            public init(certificate: String, key: String) {
                self.certificate = certificate
                self.key = key
            }
        }

        public var listen: Listen
        public var tls: TLSFiles?

        public init(listen: Listen, tls: TLSFiles? = nil) {
            self.listen = listen
            self.tls = tls
        }
    }

    private let configuration: Configuration
    private let home: PopHome
    private let machine: MachineID
    private let journal: MachineJournal
    private let access: EndpointAccess
    private let metrics: AgentMetrics
    private let samples: ResourceSamples
    private let logger: Logger
    private let onListening: @Sendable (EndpointAddress) async -> Void

    /// An endpoint for `machine`'s journals under `home`; `onListening` gets the address once it listens (a port 0
    /// or a taken default port replaced by the one given).
    public init(
        configuration: Configuration, home: PopHome, machine: MachineID, journal: MachineJournal, access: EndpointAccess,
        logger: Logger, onListening: @escaping @Sendable (EndpointAddress) async -> Void
    ) {
        self.configuration = configuration
        self.home = home
        self.machine = machine
        self.journal = journal
        self.access = access
        self.metrics = AgentMetrics(machine: machine, version: journal.version)
        self.samples = ResourceSamples()
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let server = try makeServer()
        switch configuration.listen {
        case .unix(let path):
            try Self.removeStaleSocket(path)
            try await serve(server, .unixDomainSocket(path: path))
        case .tcp(let host, let port, let anyPortWhenTaken):
            do {
                try await serve(server, .hostname(host, port: port))
            } catch let error as IOError where anyPortWhenTaken && error.errnoCode == EADDRINUSE {
                logger.warning(
                    "the endpoint's port is taken; listening on another one",
                    metadata: ["endpoint.port": "\(port)"])
                try await serve(server, .hostname(host, port: 0))
            } catch let error as IOError where error.errnoCode == EADDRINUSE {
                throw PopError(
                    .conflict, "The agent's endpoint cannot listen on \(host):\(port): the address is in use.",
                    hint: "Choose another address with `pop fg --listen`, or stop what uses it.")
            }
        }
    }

    /// The address to publish for `address`: a wildcard host (every address) becomes this machine's first address.
    public static func published(_ address: EndpointAddress) -> EndpointAddress {
        guard case .tcp(let host, let port) = address.location, host == "0.0.0.0" || host == "::" else { return address }
        let addresses = MachineAddresses.current()
        let chosen = addresses.first { !$0.contains(":") } ?? addresses.first ?? "127.0.0.1"
        return EndpointAddress(.tcp(host: chosen, port: port), tls: address.tls)
    }

    /// Serves the routes on `address` until the service group shuts down.
    ///
    /// The server is HummingbirdCore's, run without Hummingbird's `Application`: that one also runs a cache of the
    /// `Date` header that wakes the process every second, and an agent with no request to answer must not wake at
    /// all. Each response gets its `Date` when it is sent instead (``HTTPDate``).
    private func serve(_ server: HTTPServerBuilder, _ address: BindAddress) async throws {
        let listen = configuration.listen
        let tls = configuration.tls != nil
        let onListening = self.onListening
        let responder = makeRouter().buildResponder()
        let logger = self.logger
        let service = try server.buildServer(
            configuration: ServerConfiguration(address: address, serverName: nil),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger
        ) { request, writer, channel in
            let context = BasicRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                // The connection answers 400 and closes.
                throw error
            } catch {
                logger.debug("endpoint request failed", metadata: ["error": "\(error)"])
                response = Response(status: .internalServerError)
            }
            response.headers[.date] = HTTPDate.now()
            do {
                try await writer.write(response: response.head, body: response.body)
            } catch is HTTPParserError {
                // Not rethrown as it is: the connection would answer 400 after this response's head. It closes.
                throw ResponseWriteFailed()
            }
        } onServerRunning: { channel in
            switch listen {
            case .unix(let path):
                await onListening(EndpointAddress(.unix(path: path)))
            case .tcp(let host, _, _):
                let port = channel.localAddress?.port ?? 0
                await onListening(EndpointAddress(.tcp(host: host, port: port), tls: tls))
            }
        }
        try await service.run()
    }

    /// A request whose body could not be read while its response was being written.
    private struct ResponseWriteFailed: Error {}

    private func makeServer() throws -> HTTPServerBuilder {
        guard let files = configuration.tls else { return .http1() }
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(files.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: files.key, format: .pem)
            let tls = TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(key))
            return try .tls(.http1(), tlsConfiguration: tls)
        } catch {
            throw PopError(
                .invalidInput, "Cannot use the TLS certificate \(files.certificate) with the key \(files.key): \(error).",
                hint: "Give a PEM certificate chain with --tls-cert and its PEM private key with --tls-key.")
        }
    }

    /// Removes a socket left by an earlier agent (the folder is private to this user); refuses anything else there.
    private static func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw PopError(.conflict, "\(path) exists and is not a socket; the agent's endpoint cannot listen there.", path: path)
        }
        unlink(path)
    }

    // MARK: Routes

    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: AccessMiddleware(access: access))
        let home = home
        let machine = machine
        let journal = journal
        let metrics = metrics
        let samples = samples
        router.get("/logs") { request, _ -> Response in
            let journalRequest = try Self.journalRequest(request.uri, events: nil)
            guard journalRequest.service != nil else { throw HTTPError(.badRequest, message: "/logs needs service=NAME.\n") }
            return try Self.stream(JournalFeed(home: home, machine: machine, request: journalRequest))
        }
        router.get("/events") { request, _ -> Response in
            let journalRequest = try Self.journalRequest(request.uri, events: true)
            return try Self.stream(JournalFeed(home: home, machine: machine, request: journalRequest))
        }
        router.get("/metrics") { _, _ -> Response in
            let (figures, connected) = journal.figures()
            let usage = ProcessGroupSampler.sample(groups: Set(figures.compactMap(\.pid)))
            let text = metrics.render(figures, storeConnected: connected, usage: usage)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("/resources") { request, _ -> Response in
            let only = request.uri.queryParameters["service"].map(String.init)
            let (figures, _) = journal.figures()
            let shown = figures.filter { only == nil || $0.service.rawValue == only }
            let report = samples.report(machine: machine, shown)
            let json = try JSONEncoder().encode(report)
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
        }
        return router
    }

    /// The journal request a query asks for; `events` forces events only (the `/events` path).
    private static func journalRequest(_ uri: URI, events: Bool?) throws -> JournalRequest {
        var query: [String: String] = [:]
        for (key, value) in uri.queryParameters { query[String(key)] = String(value) }
        if events == true {
            query["events"] = "1"
            query["streams"] = ""
        }
        do {
            return try JournalRequest(query: query)
        } catch {
            throw HTTPError(.badRequest, message: error.message + "\n")
        }
    }

    /// Streams a feed's frames until it ends, its client goes away, or the agent shuts down.
    private static func stream(_ makeFeed: @autoclosure () throws -> JournalFeed) throws -> Response {
        let feed: JournalFeed
        do {
            feed = try makeFeed()
        } catch let error as PopError {
            throw HTTPError(.badRequest, message: error.message + "\n")
        }
        let box = FeedBox(feed)
        return Response(
            status: .ok, headers: [.contentType: "application/x-pop-journal"],
            body: ResponseBody { writer in
                var buffer: [UInt8] = []
                let stop = box.feed.stopper
                // The agent shutting down ends a follow; the reader comes back to the next agent with its cursor.
                try await withGracefulShutdownHandler {
                    try await box.feed.run { frames in
                        buffer.removeAll(keepingCapacity: true)
                        for frame in frames { frame.encode(into: &buffer) }
                        try await writer.write(ByteBuffer(bytes: buffer))
                    }
                } onGracefulShutdown: {
                    stop.stop()
                }
                try await writer.finish(nil)
            })
    }

    /// Hands a feed to the response body's task (a feed is used by one task at a time).
    private final class FeedBox: @unchecked Sendable {
        let feed: JournalFeed
        init(_ feed: JournalFeed) { self.feed = feed }
    }

    /// Refuses requests without proof of the namespace's credentials, before routing (an unknown path included).
    struct AccessMiddleware: RouterMiddleware {
        typealias Context = BasicRequestContext
        let access: EndpointAccess

        func handle(
            _ request: Request, context: Context, next: (Request, Context) async throws -> Response
        ) async throws -> Response {
            guard
                await access.allows(
                    method: request.method.rawValue, target: request.uri.string,
                    authorization: request.headers[.authorization])
            else {
                return Response(
                    status: .unauthorized, headers: [.wwwAuthenticate: "Basic realm=\"pop\""],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: "unauthorized\n")))
            }
            return try await next(request, context)
        }
    }
}

/// The previous sample of each instance, so that CPU use is measured between two requests.
final class ResourceSamples: Sendable {
    private let previous = Mutex<[ServiceName: (usage: ProcessGroupUsage, at: Double)]>([:])

    func report(machine: MachineID, _ figures: [MachineJournal.Figures]) -> ResourceReport {
        let running = figures.filter { $0.pid != nil }
        let usage = ProcessGroupSampler.sample(groups: Set(running.compactMap(\.pid)))
        let now = ProcessGroupSampler.now()
        var rows: [ResourceReport.Instance] = []
        previous.withLock { previous in
            for figure in running {
                guard let pid = figure.pid, let current = usage[pid] else { continue }
                let cpu = ProcessGroupSampler.cpuPercent(current, at: now, previous: previous[figure.service])
                previous[figure.service] = (current, now)
                rows.append(
                    ResourceReport.Instance(
                        service: figure.service.rawValue, pid: pid, cpuPercent: cpu, memoryBytes: current.rssBytes,
                        processes: current.processes))
            }
            let live = Set(running.map(\.service))
            previous = previous.filter { live.contains($0.key) }
        }
        return ResourceReport(machine: machine.rawValue, instances: rows)
    }
}
