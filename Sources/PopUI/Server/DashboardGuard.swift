import PopState
import Hummingbird
import HTTPTypes

/// Checks every request before it reaches a route: the `Host` header (no DNS rebinding), the session cookie for the
/// API, and for every state-changing request its `Origin` and CSRF token. Adds the page's security headers to every
/// response.
struct DashboardGuard: RouterMiddleware {
    typealias Context = DashboardRequestContext

    let sessions: DashboardSessions
    let address: ListenAddress

    /// The header the page sends its session's CSRF token in.
    static let csrfHeader = HTTPField.Name("X-Pop-CSRF")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    /// Routes open without a session: the page itself (it holds no data) and the login.
    static let openPaths: Set<String> = ["/", "/dashboard.css", "/dashboard.js", "/favicon.ico", "/api/session", "/api/login"]

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            response = try await check(request, context: context, next: next)
        } catch let error as DashboardError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[Self.frameOptions] = "DENY"
        response.headers[Self.referrerPolicy] = "no-referrer"
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        return response
    }

    private func check(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let origin = address.origin
        let host = request.head.authority
        guard origin.acceptsHost(host) else {
            throw DashboardError(.wrongHost, "This dashboard does not answer to the host \(host ?? "(none)").")
        }
        var context = context
        if let id = request.cookies[address.cookieName]?.value {
            context.session = sessions.session(id)
        }
        let changesState = request.method != .get && request.method != .head
        if changesState {
            guard origin.acceptsOrigin(request.headers[.origin], host: host) else {
                throw DashboardError(
                    .forbidden, "Refused a cross-site request: it came from \(request.headers[.origin] ?? "another page").")
            }
        }
        let path = request.uri.path
        if Self.openPaths.contains(path) { return try await next(request, context) }
        guard let session = context.session else {
            throw DashboardError(.unauthenticated, "Log in first.", hint: "Open the dashboard's address that `pop ui` printed.")
        }
        if changesState {
            guard let token = request.headers[Self.csrfHeader],
                ConstantTimeText.equal(token, session.csrf)
            else {
                throw DashboardError(.forbidden, "Refused a request without this session's CSRF token.")
            }
        }
        return try await next(request, context)
    }
}

/// Text compared in constant time.
enum ConstantTimeText {
    static func equal(_ left: String, _ right: String) -> Bool {
        ConstantTime.equal(Array(left.utf8), Array(right.utf8))
    }
}
