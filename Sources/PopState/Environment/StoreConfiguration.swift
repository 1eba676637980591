/// Which coordination store to use, from `--host`/`POP_HOST` and `--prefix`.
public struct StoreConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// One ZooKeeper server address.
    public struct Server: Hashable, Sendable, CustomStringConvertible {
        /// Host name or address.
        public var host: String
        /// TCP port (2181 when not given).
        public var port: Int

        /// Creates a server address.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The store's kind and location.
    public enum Kind: Hashable, Sendable {
        /// The embedded store in this folder (pop's home).
        case embedded(folder: String)
        /// A ZooKeeper ensemble, with an optional chroot.
        case zooKeeper(servers: [Server], chroot: String?)
    }

    /// The store's kind and location.
    public var kind: Kind
    /// pop's namespace root inside the store (default `/pop`).
    public var prefix: String
    /// Digest credentials for a protected ZooKeeper namespace. With them, every node pop creates is readable and
    /// writable only by their user (see docs/security.md); the embedded store ignores them.
    public var credentials: StoreCredentials?

    /// Creates a configuration.
    public init(kind: Kind, prefix: String = "/pop", credentials: StoreCredentials? = nil) throws(PopError) {
        try NodePath.validate(prefix)
        self.kind = kind
        self.prefix = prefix
        self.credentials = credentials
    }

    /// Chooses the store from `--host` (else `POP_HOST`): ZooKeeper when given, else the embedded store in `home`.
    ///
    /// A host string is `host[:port][,host[:port]...][/chroot]`, as ZooKeeper's connect strings. For ZooKeeper the
    /// credentials come from the environment (``StoreCredentials/fromEnvironment(_:)``: `POP_AUTH`, `POP_AUTH_FILE`
    /// or the default credentials file).
    public init(host: String?, prefix: String?, environment: [String: String], home: PopHome) throws(PopError) {
        let hostString = host ?? environment["POP_HOST"].flatMap { $0.isEmpty ? nil : $0 }
        let kind: Kind
        var credentials: StoreCredentials?
        if let hostString {
            kind = try Self.parseHosts(hostString)
            credentials = try StoreCredentials.fromEnvironment(environment)
        } else {
            kind = .embedded(folder: home.storeFolder)
        }
        try self.init(kind: kind, prefix: prefix ?? "/pop", credentials: credentials)
    }

    /// Parses a ZooKeeper connect string.
    public static func parseHosts(_ string: String) throws(PopError) -> Kind {
        var hostPart = Substring(string)
        var chroot: String?
        if let slash = string.firstIndex(of: "/") {
            hostPart = string[..<slash]
            let root = String(string[slash...])
            if root != "/" {
                do {
                    try NodePath.validate(root)
                } catch {
                    throw PopError(
                        .invalidInput, "The chroot \(NameRules.printable(root)) in --host is not a valid path.")
                }
                chroot = root
            }
        }
        var servers: [Server] = []
        for entry in hostPart.split(separator: ",", omittingEmptySubsequences: false) {
            let entry = entry.trimmingCharactersInSpaces()
            guard !entry.isEmpty else {
                throw PopError(
                    .invalidInput, "The host list \(NameRules.printable(string)) has an empty entry.",
                    hint: "Use host[:port][,host[:port]...][/chroot], for example zk1:2181,zk2:2181/pop.")
            }
            var host = entry
            var port = 2181
            if entry.hasPrefix("[") {
                guard let close = entry.firstIndex(of: "]") else {
                    throw PopError(.invalidInput, "The host \(NameRules.printable(entry)) lacks its closing ']'.")
                }
                host = String(entry[entry.index(after: entry.startIndex)..<close])
                let rest = entry[entry.index(after: close)...]
                if rest.hasPrefix(":") { port = try parsePort(String(rest.dropFirst()), in: entry) }
            } else if let colon = entry.lastIndex(of: ":"), entry.filter({ $0 == ":" }).count == 1 {
                host = String(entry[..<colon])
                port = try parsePort(String(entry[entry.index(after: colon)...]), in: entry)
            }
            guard !host.isEmpty,
                !host.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f || $0 == "/" })
            else {
                throw PopError(.invalidInput, "The host \(NameRules.printable(entry)) is not a valid host name or address.")
            }
            servers.append(Server(host: host, port: port))
        }
        return .zooKeeper(servers: servers, chroot: chroot)
    }

    private static func parsePort(_ text: String, in entry: String) throws(PopError) -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw PopError(.invalidInput, "The port in \(NameRules.printable(entry)) must be a number from 1 to 65535.")
        }
        return port
    }

    public var description: String {
        switch kind {
        case .embedded(let folder): "embedded store \(folder)/\(EmbeddedStore.databaseName) prefix \(prefix)"
        case .zooKeeper(let servers, let chroot):
            "ZooKeeper \(servers.map(\.description).joined(separator: ","))\(chroot ?? "") prefix \(prefix)"
        }
    }
}

extension Substring {
    fileprivate func trimmingCharactersInSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
