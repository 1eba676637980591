import PopState

/// A health check with its placeholders already substituted: what to probe on the loopback address, and how often.
public struct HealthProbe: Hashable, Sendable, Codable {
    /// What a probe does.
    public enum Target: Hashable, Sendable, Codable {
        /// Connect to this TCP port on 127.0.0.1.
        case tcp(port: UInt16)
        /// Send `GET path` over HTTP/1.0 to `host:port` (an IPv4 loopback literal) and expect a 2xx or 3xx answer.
        case http(host: String, port: UInt16, path: String)
    }

    /// What a probe does.
    public var target: Target
    /// Time between probes once the instance is running.
    public var intervalMilliseconds: Int
    /// Time one probe may take before it counts as failed.
    public var timeoutMilliseconds: Int
    /// How long an instance may stay unhealthy (after starting, or after its last healthy probe) before a restart.
    public var gracePeriodMilliseconds: Int

    /// Creates a probe.
    public init(target: Target, intervalMilliseconds: Int = 1000, timeoutMilliseconds: Int = 1000,
                gracePeriodMilliseconds: Int = 60_000) {
        self.target = target
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.gracePeriodMilliseconds = gracePeriodMilliseconds
    }

    /// Converts a template's health check whose `port` or `url` placeholders have already been substituted.
    public init(_ check: HealthCheck) throws(SupervisorError) {
        let target: Target
        switch check.kind {
        case .tcp:
            guard let text = check.port, let port = UInt16(text), port > 0 else {
                throw SupervisorError(
                    .invalidConfiguration, "The tcp health check's port '\(check.port ?? "")' is not a port number.",
                    hint: "Give a port between 1 and 65535, or a placeholder such as {port} that resolves to one.")
            }
            target = .tcp(port: port)
        case .http:
            target = try Self.parseURL(check.url ?? "")
        }
        self.init(
            target: target, intervalMilliseconds: check.intervalMilliseconds,
            timeoutMilliseconds: check.timeoutMilliseconds, gracePeriodMilliseconds: check.gracePeriodMilliseconds)
    }

    /// Parses `http://HOST[:PORT][/PATH]` where HOST is `localhost` or an IPv4 literal.
    static func parseURL(_ url: String) throws(SupervisorError) -> Target {
        let invalid = SupervisorError(
            .invalidConfiguration, "The http health check URL '\(url)' cannot be probed.",
            hint: "Use http://127.0.0.1:PORT/PATH (or localhost); health checks only probe this machine.")
        guard url.hasPrefix("http://") else { throw invalid }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = String(authority)
        var port: UInt16 = 80
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let parsed = UInt16(authority[authority.index(after: colon)...]), parsed > 0 else { throw invalid }
            port = parsed
        }
        if host == "localhost" { host = "127.0.0.1" }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }),
            !path.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " })
        else { throw invalid }
        return .http(host: host, port: port, path: path)
    }

    /// Reads the status code from the start of an HTTP response, or `nil` if the bytes are not one.
    static func statusCode(ofResponse bytes: some Collection<UInt8>) -> Int? {
        // "HTTP/1.x NNN ..."
        let text = String(decoding: bytes.prefix(64), as: UTF8.self)
        guard text.hasPrefix("HTTP/") else { return nil }
        let parts = text.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[1].count == 3, let code = Int(parts[1]) else { return nil }
        return code
    }
}
