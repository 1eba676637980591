/// An error from a ZooKeeper server or from the client itself: what happened, to which node, and what to do.
///
/// Server errors carry the code the server sent (`.noNode`, `.badVersion`, …). Errors the client detects
/// itself (a frame above the size limit, a connect timeout, a closed client) use codes with positive values,
/// which ZooKeeper never sends.
public struct ZooKeeperError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure: every error code a ZooKeeper 3.8 server sends, plus the client's own.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The numeric code as ZooKeeper defines it (negative for server codes).
        public var rawValue: Int32

        /// Creates a code from its numeric value; unknown values are kept as they are.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// A system or server-side error.
        public static let systemError = Code(rawValue: -1)
        /// The server's state became inconsistent.
        public static let runtimeInconsistency = Code(rawValue: -2)
        /// A data inconsistency was found.
        public static let dataInconsistency = Code(rawValue: -3)
        /// The connection to the server was lost before the reply arrived; the request may or may not have been applied.
        public static let connectionLoss = Code(rawValue: -4)
        /// The server failed to marshal or unmarshal data.
        public static let marshallingError = Code(rawValue: -5)
        /// The operation is not implemented by this server.
        public static let unimplemented = Code(rawValue: -6)
        /// The operation timed out.
        public static let operationTimeout = Code(rawValue: -7)
        /// Invalid arguments were given.
        public static let badArguments = Code(rawValue: -8)
        /// A new configuration was rejected (reconfig).
        public static let newConfigNoQuorum = Code(rawValue: -13)
        /// Another reconfiguration is in progress.
        public static let reconfigInProgress = Code(rawValue: -14)
        /// The session is unknown to the server.
        public static let unknownSession = Code(rawValue: -12)
        /// An API usage error.
        public static let apiError = Code(rawValue: -100)
        /// The node does not exist.
        public static let noNode = Code(rawValue: -101)
        /// The client lacks the permission the node's ACL requires.
        public static let noAuth = Code(rawValue: -102)
        /// The version given does not match the node's version.
        public static let badVersion = Code(rawValue: -103)
        /// Ephemeral nodes may not have children.
        public static let noChildrenForEphemerals = Code(rawValue: -108)
        /// The node already exists.
        public static let nodeExists = Code(rawValue: -110)
        /// The node has children.
        public static let notEmpty = Code(rawValue: -111)
        /// The session has expired; its ephemeral nodes and watches are gone.
        public static let sessionExpired = Code(rawValue: -112)
        /// An invalid callback was given.
        public static let invalidCallback = Code(rawValue: -113)
        /// The ACL is invalid.
        public static let invalidACL = Code(rawValue: -114)
        /// Authentication failed.
        public static let authFailed = Code(rawValue: -115)
        /// The session moved to another server.
        public static let sessionMoved = Code(rawValue: -118)
        /// A read-only server refused a write.
        public static let notReadOnly = Code(rawValue: -119)
        /// An ephemeral node is being created on a local session.
        public static let ephemeralOnLocalSession = Code(rawValue: -120)
        /// No watch matches the removal request.
        public static let noWatcher = Code(rawValue: -121)
        /// The request timed out on the server.
        public static let requestTimeout = Code(rawValue: -122)
        /// Reconfiguration is disabled on the server.
        public static let reconfigDisabled = Code(rawValue: -123)
        /// The server requires SASL authentication before it accepts other requests.
        public static let sessionClosedRequireSASLAuth = Code(rawValue: -124)
        /// A quota was exceeded.
        public static let quotaExceeded = Code(rawValue: -125)
        /// The server throttled the operation.
        public static let throttledOp = Code(rawValue: -127)

        /// A frame was larger than the configured `maxBufferSize` (ZooKeeper's jute.maxbuffer).
        public static let frameTooLarge = Code(rawValue: 1)
        /// No ensemble member answered within the connect timeout.
        public static let connectTimeout = Code(rawValue: 2)
        /// The server sent bytes that break the protocol (a reply out of order, a malformed record).
        public static let protocolError = Code(rawValue: 3)
        /// The client has been closed.
        public static let clientClosed = Code(rawValue: 4)
        /// The connect string could not be parsed.
        public static let invalidConnectString = Code(rawValue: 5)
        /// A path given to the client is not a valid ZooKeeper path.
        public static let invalidPath = Code(rawValue: 6)
        /// The watch was never requested, so awaiting it cannot produce an event.
        public static let watchNotRequested = Code(rawValue: 7)

        /// The ZooKeeper name of the code, e.g. `NONODE`.
        public var name: String {
            switch self.rawValue {
            case 0: "OK"
            case -1: "SYSTEMERROR"
            case -2: "RUNTIMEINCONSISTENCY"
            case -3: "DATAINCONSISTENCY"
            case -4: "CONNECTIONLOSS"
            case -5: "MARSHALLINGERROR"
            case -6: "UNIMPLEMENTED"
            case -7: "OPERATIONTIMEOUT"
            case -8: "BADARGUMENTS"
            case -12: "UNKNOWNSESSION"
            case -13: "NEWCONFIGNOQUORUM"
            case -14: "RECONFIGINPROGRESS"
            case -100: "APIERROR"
            case -101: "NONODE"
            case -102: "NOAUTH"
            case -103: "BADVERSION"
            case -108: "NOCHILDRENFOREPHEMERALS"
            case -110: "NODEEXISTS"
            case -111: "NOTEMPTY"
            case -112: "SESSIONEXPIRED"
            case -113: "INVALIDCALLBACK"
            case -114: "INVALIDACL"
            case -115: "AUTHFAILED"
            case -118: "SESSIONMOVED"
            case -119: "NOTREADONLY"
            case -120: "EPHEMERALONLOCALSESSION"
            case -121: "NOWATCHER"
            case -122: "REQUESTTIMEOUT"
            case -123: "RECONFIGDISABLED"
            case -124: "SESSIONCLOSEDREQUIRESASLAUTH"
            case -125: "QUOTAEXCEEDED"
            case -127: "THROTTLEDOP"
            case 1: "FRAMETOOLARGE"
            case 2: "CONNECTTIMEOUT"
            case 3: "PROTOCOLERROR"
            case 4: "CLIENTCLOSED"
            case 5: "INVALIDCONNECTSTRING"
            case 6: "INVALIDPATH"
            case 7: "WATCHNOTREQUESTED"
            default: "UNKNOWN(\(self.rawValue))"
            }
        }

        /// A short explanation of the code.
        var summary: String {
            switch self {
            case .noNode: "the node does not exist"
            case .nodeExists: "the node already exists"
            case .badVersion: "the node's version does not match the expected version (someone else changed it)"
            case .notEmpty: "the node has children; delete them first"
            case .noAuth: "not authorized by the node's ACL; add credentials with addAuth or use an allowed identity"
            case .noChildrenForEphemerals: "ephemeral nodes cannot have children"
            case .invalidACL: "the ACL is invalid (for example an auth ACL without credentials)"
            case .authFailed: "authentication failed"
            case .sessionExpired: "the session has expired; its ephemeral nodes and watches are gone, connect a new client"
            case .connectionLoss: "the connection was lost before the reply arrived; the request may or may not have been applied"
            case .sessionMoved: "the session moved to another server"
            case .noWatcher: "no such watch is registered"
            case .unimplemented: "the server does not implement this operation (TTL nodes need zookeeper.extendedTypesEnabled=true)"
            case .badArguments: "the server rejected the arguments"
            case .marshallingError: "the server could not decode the request"
            case .quotaExceeded: "a quota was exceeded"
            case .throttledOp: "the server is throttling requests; retry later"
            case .notReadOnly: "a read-only server refused a write"
            case .frameTooLarge: "the frame exceeds the maximum size (jute.maxbuffer); raise maxBufferSize on client and server, or store less"
            case .connectTimeout: "no ZooKeeper server answered within the connect timeout; check the connect string and that the servers are running"
            case .protocolError: "the server broke the ZooKeeper protocol"
            case .clientClosed: "the client was closed; create a new client"
            case .invalidConnectString: "the connect string is invalid; expected host:port[,host:port…][/chroot]"
            case .invalidPath: "the path is invalid; paths start with '/', do not end with '/' and have no empty, '.' or '..' segments"
            case .watchNotRequested: "no watch was requested for this call"
            default: "the server reported \(self.name)"
            }
        }

        /// A readable form, for logs and messages.
        public var description: String { self.name }
    }

    /// The kind of failure.
    public var code: Code
    /// The node the failing operation named, as the caller gave it (without chroot), if any.
    public var path: String?
    /// A readable sentence: what happened, to what, and what to do.
    public var message: String
    /// For a failed `multi`, the index of the operation that failed.
    public var failedOperationIndex: Int?

    /// Creates an error; without a message, one is derived from the code and path.
    public init(code: Code, path: String? = nil, message: String? = nil, failedOperationIndex: Int? = nil) {
        self.code = code
        self.path = path
        self.failedOperationIndex = failedOperationIndex
        if let message {
            self.message = message
        } else if let path {
            self.message = "\(code.name) on \(path): \(code.summary)"
        } else {
            self.message = "\(code.name): \(code.summary)"
        }
    }

    /// A readable form, for logs and messages.
    public var description: String { "ZooKeeperError(\(self.message))" }
}
