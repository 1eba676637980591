import Hummingbird
import NIOCore

/// A request's context: the connection it came on (so a stream can end when the page goes away) and the session
/// the guard found for it.
struct DashboardRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The connection.
    let channel: any Channel
    /// The logged-in session, once ``DashboardGuard`` has checked the cookie.
    var session: DashboardSessions.Session?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
