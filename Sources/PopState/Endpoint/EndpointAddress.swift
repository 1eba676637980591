/// Where an agent's endpoint listens, as published in its machine record: `http://10.0.0.2:7676`,
/// `https://10.0.0.2:7676` or `unix:///var/lib/pop/machines/m1/agent.sock`.
public struct EndpointAddress: Hashable, Sendable, CustomStringConvertible {
    /// How to reach it.
    public enum Location: Hashable, Sendable {
        /// A TCP address (an IPv6 host without brackets).
        case tcp(host: String, port: Int)
        /// A unix socket.
        case unix(path: String)
    }

    /// Where it listens.
    public var location: Location
    /// Whether it speaks TLS.
    public var tls: Bool

    /// The default port of an agent's endpoint.
    public static let defaultPort = 7676

    /// An address.
    public init(_ location: Location, tls: Bool = false) {
        self.location = location
        self.tls = tls
    }

    /// Parses the published form; nil when it is not one.
    public init?(_ text: String) {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { return nil }
            self.init(.unix(path: path))
            return
        }
        let tls: Bool
        let rest: Substring
        if text.hasPrefix("https://") {
            tls = true
            rest = text.dropFirst("https://".count)
        } else if text.hasPrefix("http://") {
            tls = false
            rest = text.dropFirst("http://".count)
        } else {
            return nil
        }
        guard let (host, port) = Self.hostAndPort(rest, defaultPort: nil) else { return nil }
        self.init(.tcp(host: host, port: port), tls: tls)
    }

    /// Parses `HOST:PORT` (`[V6]:PORT`, or `:PORT` for every address) as `pop fg --listen` takes it.
    public static func hostAndPort(_ text: Substring, defaultPort: Int?) -> (host: String, port: Int)? {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" || $0 == "%" }) else {
            return nil
        }
        let port: Int?
        if let portText { port = Int(portText) } else { port = defaultPort }
        guard let port, (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// The published form.
    public var description: String {
        switch location {
        case .unix(let path): "unix://" + path
        case .tcp(let host, let port): (tls ? "https://" : "http://") + (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        }
    }

    /// `HOST:PORT` for a scrape target (nil for a unix socket).
    public var target: String? {
        guard case .tcp(let host, let port) = location else { return nil }
        return (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }
}
