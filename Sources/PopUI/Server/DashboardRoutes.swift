import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PopAgent
import PopState
import ServiceLifecycle

/// The dashboard's routes.
struct DashboardRoutes: Sendable {
    let namespace: PopNamespace
    let feed: FleetFeed
    let login: DashboardLogin
    let sessions: DashboardSessions
    let address: ListenAddress
    let assets: PageAssets
    let journals: AgentJournals
    let logger: Logger

    /// Request bodies are small JSON objects.
    static let maximumBody = 64 * 1024

    func router() -> Router<DashboardRequestContext> {
        let router = Router(context: DashboardRequestContext.self)
        router.add(middleware: DashboardGuard(sessions: sessions, address: address))
        for path in ["/", "/dashboard.css", "/dashboard.js"] {
            router.get(RouterPath(path)) { request, _ in
                assets.response(path, ifNoneMatch: request.headers[.ifNoneMatch]) ?? Response(status: .notFound)
            }
        }
        router.get("/api/session") { _, context in try session(context) }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.post("/api/login") { request, context in try await logIn(request, context) }
        router.post("/api/logout") { _, context in logOut(context) }
        router.get("/api/events") { _, context in fleetEvents(context) }
        router.get("/api/services/:service") { _, context in
            JSONReply.response(try await run { try await actions.details(try serviceName(context)) })
        }
        router.post("/api/services/:service/restart") { request, context in
            let body = try await decode(MachinesBody.self, request)
            let asked = try await run {
                try await actions.restart(try serviceName(context), machines: try body.machines.map(machineIDs))
            }
            return JSONReply.response(["machines": asked.map(\.rawValue)])
        }
        router.post("/api/services/:service/deploy") { request, context in
            let body = try await decode(MachinesBody.self, request)
            let added = try await run {
                try await actions.deploy(try serviceName(context), machines: try machineIDs(body.machines ?? []))
            }
            return JSONReply.response(["machines": added.map(\.rawValue)])
        }
        router.post("/api/services/:service/undeploy") { request, context in
            let body = try await decode(MachinesBody.self, request)
            let removed = try await run {
                try await actions.undeploy(try serviceName(context), machines: try machineIDs(body.machines ?? []))
            }
            return JSONReply.response(["machines": removed.map(\.rawValue)])
        }
        router.post("/api/services/:service/plan") { request, context in
            let body = try await decode(ConfigurationBody.self, request)
            return JSONReply.response(try await run { try await actions.plan(try serviceName(context), options: body.options) })
        }
        router.post("/api/services/:service/config") { request, context in
            let body = try await decode(ConfigurationBody.self, request)
            guard let version = body.version else {
                throw DashboardError(.invalidInput, "A configuration change needs the version its plan was shown for.")
            }
            let plan = try await run {
                try await actions.applyConfiguration(try serviceName(context), options: body.options, version: version)
            }
            logger.info(
                "configuration changed from the dashboard",
                metadata: [
                    "service": "\(plan.service)", "options": "\(plan.changes.map(\.option).joined(separator: ","))",
                    "signature": "\(plan.signatureAfter)", "user": "\(context.session?.user ?? "-")",
                ])
            return JSONReply.response(plan)
        }
        router.get("/api/services/:service/machines/:machine/log") { _, context in
            try await journals.log(
                try serviceName(context), on: try machineIDs([context.parameters.get("machine") ?? ""])[0],
                channel: context.channel)
        }
        router.get("/api/services/:service/events") { _, context in
            try await journals.events(try serviceName(context), channel: context.channel)
        }
        return router
    }

    private var actions: DashboardActions { DashboardActions(namespace: namespace) }

    // MARK: Session

    /// Whether this browser is logged in, and how to log in: never an error, the page shows its login form.
    private func session(_ context: DashboardRequestContext) throws -> Response {
        guard let session = context.session else {
            return JSONReply.response(SessionReply(authenticated: false, loginWith: login.kind))
        }
        return JSONReply.response(
            SessionReply(
                authenticated: true, loginWith: login.kind, user: session.user, csrf: session.csrf,
                store: namespace.store.description))
    }

    private struct SessionReply: Encodable {
        var authenticated: Bool
        var loginWith: String
        var user: String?
        var csrf: String?
        var store: String?
    }

    private struct LoginBody: Decodable {
        var user: String?
        var password: String?
        var token: String?
    }

    private func logIn(_ request: Request, _ context: DashboardRequestContext) async throws -> Response {
        let body = try await decode(LoginBody.self, request)
        guard sessions.mayAttemptLogin() else {
            throw DashboardError(.tooManyAttempts, "Too many failed logins in the last minute; wait and try again.")
        }
        guard login.accepts(user: body.user, password: body.password, token: body.token) else {
            sessions.loginFailed()
            logger.warning("refused a dashboard login", metadata: ["login": "\(login.kind)"])
            throw DashboardError(
                .unauthenticated,
                login.kind == "token"
                    ? "That token is not this dashboard's." : "Wrong user or password for this namespace.",
                hint: login.kind == "token"
                    ? "Use the address `pop ui` printed when it started." : "Use the credentials `pop init --auth` set.")
        }
        let user = login.kind == "token" ? "token" : body.user ?? "-"
        let session = sessions.open(user: user)
        var response = JSONReply.response(
            SessionReply(
                authenticated: true, loginWith: login.kind, user: user, csrf: session.csrf,
                store: namespace.store.description))
        response.headers[.setCookie] =
            "\(address.cookieName)=\(session.id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(DashboardSessions.idleLifetime.components.seconds))"
        return response
    }

    private func logOut(_ context: DashboardRequestContext) -> Response {
        if let session = context.session { sessions.close(session.id) }
        var response = JSONReply.response(["user": ""])
        response.headers[.setCookie] = "\(address.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        return response
    }

    // MARK: Streams

    /// The fleet as server-sent events: the whole model first, then the rows that changed. The subscription, and with
    /// the last one the store watch, ends when the page goes away.
    private func fleetEvents(_ context: DashboardRequestContext) -> Response {
        let subscription = feed.subscribe()
        ConnectionClosing.watch(context.channel) { subscription.cancel() }
        return Response(
            status: .ok, headers: Self.eventStreamHeaders,
            body: ResponseBody { writer in
                defer { subscription.cancel() }
                var sent: FleetModel?
                // The server waits for open responses when it shuts down: the stream ends then.
                for await item in subscription.items.cancelOnGracefulShutdown() {
                    let text: String
                    switch item {
                    case .model(let model):
                        guard let update = FleetUpdate.between(sent, model) else { continue }
                        sent = model
                        text = update.serverSentEvent(now: Date())
                    case .problem(let message):
                        text = ServerSentEvent.format(event: "problem", json: ["error": message])
                    }
                    try await writer.write(ByteBuffer(string: text))
                }
                try await writer.finish(nil)
            })
    }

    static let eventStreamHeaders: HTTPFields = [
        .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store",
    ]

    // MARK: Input

    private struct MachinesBody: Decodable {
        var machines: [String]?
    }

    private struct ConfigurationBody: Decodable {
        var options: [String: String]
        var version: Int32?
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            throw DashboardError(.invalidInput, "Send the request's body as application/json.")
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: Self.maximumBody)
        } catch {
            throw DashboardError(.invalidInput, "The request's body is larger than \(Self.maximumBody) bytes.")
        }
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw DashboardError(.invalidInput, "The request's body is not the JSON this action takes.")
        }
    }

    private func serviceName(_ context: DashboardRequestContext) throws -> ServiceName {
        do {
            return try ServiceName(context.parameters.get("service") ?? "")
        } catch {
            throw DashboardError(error)
        }
    }

    private func machineIDs(_ names: [String]) throws -> [MachineID] {
        do {
            return try names.map { try MachineID($0) }
        } catch let error as PopError {
            throw DashboardError(error)
        }
    }

    /// Runs a store operation, turning its errors into the dashboard's.
    private func run<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error as PopError {
            throw DashboardError(error)
        }
    }
}
