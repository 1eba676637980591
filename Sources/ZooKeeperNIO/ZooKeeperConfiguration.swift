import Logging
import NIOCore
import NIOPosix

/// Everything a `ZooKeeperClient` needs: servers, chroot, timeouts, credentials, limits and a logger.
public struct ZooKeeperConfiguration: Sendable {
    /// One ensemble member's address.
    public struct Server: Hashable, Sendable, CustomStringConvertible {
        /// Host name or IP address.
        public var host: String
        /// TCP port (2181 by default).
        public var port: Int

        /// Creates a server address.
        public init(host: String, port: Int = 2181) {
            self.host = host
            self.port = port
        }

        /// A readable form, for logs and messages.
        public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
    }

    /// ZooKeeper's default jute.maxbuffer: 0xfffff bytes.
    public static let defaultMaxBufferSize = 0xfffff

    /// The ensemble members; the client starts at a random one and moves on when one fails.
    public var servers: [Server]
    /// A path every request is relative to (e.g. `/app`), or nil. The chroot itself reads as "/".
    public var chroot: String?
    /// The session timeout to ask for; the server clamps it to [2, 20] × its tickTime.
    public var sessionTimeout: Duration
    /// How long `ZooKeeperClient.connect` waits for the first session before failing with `.connectTimeout`.
    public var connectTimeout: Duration
    /// Credentials sent on every connection, before any request (for example a digest user).
    public var credentials: [ZooKeeperCredential]
    /// The largest frame accepted or sent (ZooKeeper's jute.maxbuffer); must match the server's setting.
    public var maxBufferSize: Int
    /// Where the client logs (at `.info` and below).
    public var logger: Logger
    /// The event loops the connection runs on; one loop is picked.
    public var eventLoopGroup: any EventLoopGroup

    /// Creates a configuration for explicit servers.
    public init(
        servers: [Server], chroot: String? = nil, sessionTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(10), credentials: [ZooKeeperCredential] = [],
        maxBufferSize: Int = Self.defaultMaxBufferSize, logger: Logger = Logger(label: "zookeeper"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.servers = servers
        self.chroot = chroot
        self.sessionTimeout = sessionTimeout
        self.connectTimeout = connectTimeout
        self.credentials = credentials
        self.maxBufferSize = maxBufferSize
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
    }

    /// Parses a connect string such as `h1:2181,h2:2181/app` (port 2181 when omitted, IPv6 hosts in brackets).
    public init(connectString: String, sessionTimeout: Duration = .seconds(10), logger: Logger = Logger(label: "zookeeper")) throws {
        let (servers, chroot) = try Self.parse(connectString: connectString)
        self.init(servers: servers, chroot: chroot, sessionTimeout: sessionTimeout, logger: logger)
    }

    static func parse(connectString: String) throws(ZooKeeperError) -> ([Server], String?) {
        func invalid(_ why: String) -> ZooKeeperError {
            ZooKeeperError(
                code: .invalidConnectString,
                message: "invalid ZooKeeper connect string '\(connectString)': \(why); expected host:port[,host:port…][/chroot]"
            )
        }
        var hostsPart = Substring(connectString.trimmingWhitespace())
        var chroot: String?
        if let slash = hostsPart.firstIndex(of: "/") {
            let path = String(hostsPart[slash...])
            hostsPart = hostsPart[..<slash]
            if path != "/" {
                do {
                    try ZooKeeperPath.validate(path)
                } catch {
                    throw invalid("the chroot '\(path)' is not a valid path")
                }
                chroot = path
            }
        }
        var servers: [Server] = []
        for item in hostsPart.split(separator: ",", omittingEmptySubsequences: false) {
            let entry = item.trimmingWhitespace()
            guard !entry.isEmpty else { throw invalid("empty host entry") }
            var host: Substring
            var portText: Substring?
            if entry.hasPrefix("[") {
                guard let close = entry.firstIndex(of: "]") else { throw invalid("unclosed '[' in '\(entry)'") }
                host = entry[entry.index(after: entry.startIndex)..<close]
                let rest = entry[entry.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":") else { throw invalid("unexpected text after ']' in '\(entry)'") }
                    portText = rest.dropFirst()
                }
            } else if let colon = entry.lastIndex(of: ":") {
                host = entry[..<colon]
                portText = entry[entry.index(after: colon)...]
            } else {
                host = entry[...]
            }
            guard !host.isEmpty else { throw invalid("missing host in '\(entry)'") }
            var port = 2181
            if let portText {
                guard let value = Int(portText), (1...65535).contains(value) else { throw invalid("bad port in '\(entry)'") }
                port = value
            }
            servers.append(Server(host: String(host), port: port))
        }
        guard !servers.isEmpty else { throw invalid("no servers") }
        return (servers, chroot)
    }
}

/// Credentials for `addAuth`: a scheme and its bytes (for `digest`, `user:password`).
public struct ZooKeeperCredential: Hashable, Sendable {
    /// The auth scheme, e.g. `digest`.
    public var scheme: String
    /// The scheme's credential bytes.
    public var auth: [UInt8]

    /// Creates a credential.
    public init(scheme: String, auth: [UInt8]) {
        self.scheme = scheme
        self.auth = auth
    }

    /// A digest credential (`user:password`), matching ACL ids made with `ZooKeeperACL.ID.digest(user:password:)`.
    public static func digest(user: String, password: String) -> ZooKeeperCredential {
        ZooKeeperCredential(scheme: "digest", auth: Array("\(user):\(password)".utf8))
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let text = Substring(self)
        guard let start = text.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = text.lastIndex(where: { !$0.isWhitespace })!
        return text[start...end]
    }
}
