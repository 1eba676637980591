import Foundation
import PopState
import Synchronization

/// Decides whether a request to the agent's endpoint comes from a holder of the namespace's credentials.
///
/// - Every path accepts a request signed with the namespace's endpoint key (``RequestSignature``), within the replay
///   window and with a nonce not seen before.
/// - `/metrics` also accepts what Prometheus sends: `Basic` with the namespace's user and password (a protected
///   namespace), or `Bearer` with the scrape token derived from the endpoint key (``EndpointKey/scrapeToken``).
///
/// Anything else is refused, and the refusal says nothing about why. When a signature does not check out with the key
/// the agent has, it reads the key again (at most every few seconds), so a key replaced in the store is taken up
/// without restarting the agent.
public final class EndpointAccess: Sendable {
    private let credentials: StoreCredentials?
    private let refresh: @Sendable () async -> EndpointKey?
    private let state: Mutex<State>

    private struct State {
        var key: EndpointKey?
        var lastRefresh: ContinuousClock.Instant?
        /// Nonces of accepted requests, with their times, kept for twice the replay window.
        var nonces: [String: Int64] = [:]
    }

    /// The fewest seconds between two readings of the key caused by refused requests.
    static let refreshInterval: Duration = .seconds(5)
    /// The most nonces kept; beyond, signed requests are refused until older ones expire.
    static let nonceLimit = 200_000

    /// Access for a namespace with `credentials` (nil when it has none), `key` when known, `refresh` to read it again.
    public init(credentials: StoreCredentials?, key: EndpointKey?, refresh: @escaping @Sendable () async -> EndpointKey?) {
        self.credentials = credentials
        self.refresh = refresh
        self.state = Mutex(State(key: key))
    }

    /// Sets the key (read by the agent when its session starts).
    public func setKey(_ key: EndpointKey) {
        state.withLock { $0.key = key }
    }

    /// Whether a request for `target` (path and query, as sent) with this `authorization` header may go on.
    public func allows(method: String, target: String, authorization: String?, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) async -> Bool {
        guard let authorization else { return false }
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        if authorization.hasPrefix(RequestSignature.scheme + " ") {
            if let key = state.withLock({ $0.key }), accept(authorization, method: method, target: target, key: key, now: now) {
                return true
            }
            guard let key = await refreshedKey() else { return false }
            return accept(authorization, method: method, target: target, key: key, now: now)
        }
        guard path == "/metrics" else { return false }
        if authorization.hasPrefix("Basic "), let credentials {
            guard let decoded = Data(base64Encoded: String(authorization.dropFirst(6))) else { return false }
            return ConstantTime.equal(Array(decoded), Array(credentials.pair.utf8))
        }
        if authorization.hasPrefix("Bearer ") {
            let offered = Array(authorization.dropFirst(7).utf8)
            if let key = state.withLock({ $0.key }), ConstantTime.equal(offered, Array(key.scrapeToken.utf8)) { return true }
            guard let key = await refreshedKey() else { return false }
            return ConstantTime.equal(offered, Array(key.scrapeToken.utf8))
        }
        return false
    }

    private func accept(_ authorization: String, method: String, target: String, key: EndpointKey, now: Int64) -> Bool {
        guard let claims = RequestSignature.verify(authorization, method: method, target: target, key: key, now: now) else {
            return false
        }
        return state.withLock { state in
            if state.nonces.count >= Self.nonceLimit / 2 {
                state.nonces = state.nonces.filter { now - $0.value <= 2 * RequestSignature.window }
            }
            guard state.nonces.count < Self.nonceLimit, state.nonces[claims.nonce] == nil else { return false }
            state.nonces[claims.nonce] = claims.milliseconds
            return true
        }
    }

    /// The key read again, unless it was read less than ``refreshInterval`` ago.
    private func refreshedKey() async -> EndpointKey? {
        let due = state.withLock { state in
            let now = ContinuousClock.now
            if let last = state.lastRefresh, now - last < Self.refreshInterval { return false }
            state.lastRefresh = now
            return true
        }
        guard due, let key = await refresh() else { return nil }
        state.withLock { $0.key = key }
        return key
    }
}
