/// Which `Host` and `Origin` headers the dashboard accepts: the checks that stop DNS rebinding and cross-site
/// requests from other pages in the same browser.
///
/// A page of another origin (even another port on the same host, which counts as the same *site*, so SameSite
/// cookies are still sent) can make the browser send a form POST, but the browser names that page in `Origin`; a
/// state-changing request is refused unless its `Origin` is the dashboard's own, and unless it carries the session's
/// CSRF token, which only the dashboard's own page can read.
struct RequestOrigin: Sendable, Hashable {
    /// The `Host` values accepted; nil accepts any (the dashboard listens on a non-loopback address by choice).
    let allowedHosts: Set<String>?

    /// The rules for a dashboard listening on `host`:`port`.
    init(listenHost host: String, port: Int) {
        let loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) || host.hasPrefix("127.")
        if loopback {
            let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
            allowedHosts = Set(["127.0.0.1", "localhost", "[::1]", bracketed].map { "\($0):\(port)" })
        } else {
            allowedHosts = nil
        }
    }

    /// Whether a request with this `Host` header may be answered at all.
    func acceptsHost(_ host: String?) -> Bool {
        guard let allowedHosts else { return true }
        guard let host else { return false }
        return allowedHosts.contains(host.lowercased())
    }

    /// Whether a state-changing request from `origin` (the `Origin` header) to `host` (the `Host` header) comes from
    /// the dashboard's own page. A request without `Origin` is not from a browser's cross-site form or script (every
    /// current browser sends it on POST); it still needs the CSRF token.
    func acceptsOrigin(_ origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        guard let host, acceptsHost(host) else { return false }
        return origin.lowercased() == "http://" + host.lowercased()
    }
}
