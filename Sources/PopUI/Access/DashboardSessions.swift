import Foundation
import Synchronization

/// The logged-in browsers: a session per successful login, named by a random id kept in an HttpOnly cookie, each
/// with its own token against cross-site request forgery. Held in memory only: restarting `pop ui` logs everyone out.
final class DashboardSessions: Sendable {
    /// One logged-in browser.
    struct Session: Sendable, Hashable {
        /// The cookie's value.
        var id: String
        /// Who logged in (`token` for a token login).
        var user: String
        /// What every state-changing request must carry in its `X-Pop-CSRF` header.
        var csrf: String
        /// When the session ends unless used again.
        var expires: ContinuousClock.Instant
    }

    /// How long a session lasts without being used.
    static let idleLifetime: Duration = .seconds(12 * 3600)
    /// At most this many failed logins in ``failureWindow``; more are refused without being checked.
    static let failureLimit = 10
    static let failureWindow: Duration = .seconds(60)

    private struct State {
        var sessions: [String: Session] = [:]
        var failures: [ContinuousClock.Instant] = []
    }

    private let state = Mutex(State())

    /// A new session for `user`.
    func open(user: String) -> Session {
        let session = Session(
            id: RandomToken.make() + RandomToken.make(), user: user, csrf: RandomToken.make(),
            expires: .now + Self.idleLifetime)
        state.withLock { state in
            let now = ContinuousClock.now
            state.sessions = state.sessions.filter { $0.value.expires > now }
            state.sessions[session.id] = session
        }
        return session
    }

    /// The live session named `id`, its lifetime renewed; nil when there is none.
    func session(_ id: String) -> Session? {
        state.withLock { state in
            guard var session = state.sessions[id] else { return nil }
            let now = ContinuousClock.now
            guard session.expires > now else {
                state.sessions[id] = nil
                return nil
            }
            session.expires = now + Self.idleLifetime
            state.sessions[id] = session
            return session
        }
    }

    /// Ends the session named `id`.
    func close(_ id: String) {
        _ = state.withLock { $0.sessions.removeValue(forKey: id) }
    }

    /// Whether another login attempt may be checked now (few failures lately).
    func mayAttemptLogin() -> Bool {
        state.withLock { state in
            let since = ContinuousClock.now - Self.failureWindow
            state.failures.removeAll { $0 < since }
            return state.failures.count < Self.failureLimit
        }
    }

    /// Notes a failed login.
    func loginFailed() {
        state.withLock { $0.failures.append(.now) }
    }
}
