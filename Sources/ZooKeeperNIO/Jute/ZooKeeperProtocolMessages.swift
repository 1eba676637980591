import NIOCore

/// The first message of every connection: a new session (sessionID 0) or the resumption of an existing one.
struct ConnectRequest: Hashable, Sendable {
    var protocolVersion: Int32 = 0
    var lastZxidSeen: Int64
    var timeout: Int32
    var sessionID: Int64
    var password: [UInt8]
    var readOnly: Bool = false

    static func newSession(timeoutMilliseconds: Int32) -> ConnectRequest {
        ConnectRequest(lastZxidSeen: 0, timeout: timeoutMilliseconds, sessionID: 0, password: [UInt8](repeating: 0, count: 16))
    }
}

/// The server's answer to a `ConnectRequest`; `timeout <= 0` means the session is expired or unknown.
struct ConnectResponse: Hashable, Sendable {
    var protocolVersion: Int32
    var timeout: Int32
    var sessionID: Int64
    var password: [UInt8]
    var readOnly: Bool
}

/// The watch notification the server sends with xid -1.
struct WatcherEvent: Hashable, Sendable {
    var type: Int32
    var state: Int32
    var path: String
}

/// Everything a client sends.
enum ZooKeeperClientMessage: Hashable, Sendable {
    /// The handshake.
    case connect(ConnectRequest)
    /// A request: header (xid, opcode) and its encoded body.
    case request(xid: Int32, opCode: ZooKeeperOpCode, body: ByteBuffer)
}

/// Everything a server sends, as the decoder splits it.
enum ZooKeeperServerMessage: Hashable, Sendable {
    case connectResponse(ConnectResponse)
    /// A watch notification (xid -1); `zxid` is the header's zxid.
    case watchEvent(WatcherEvent, zxid: Int64)
    /// The answer to a ping (xid -2).
    case pingReply
    /// The answer to an auth packet (xid -4).
    case authReply(error: Int32)
    /// The answer to a request; the body is only present when `error == 0`.
    case reply(xid: Int32, zxid: Int64, error: Int32, body: ByteBuffer)
}

/// The xids ZooKeeper reserves.
enum ReservedXID {
    static let notification: Int32 = -1
    static let ping: Int32 = -2
    static let auth: Int32 = -4
    static let setWatches: Int32 = -8
}

extension ByteBuffer {
    mutating func writeConnectRequest(_ request: ConnectRequest) {
        self.writeInteger(request.protocolVersion)
        self.writeInteger(request.lastZxidSeen)
        self.writeInteger(request.timeout)
        self.writeInteger(request.sessionID)
        self.writeJuteBuffer(request.password)
        self.writeJuteBool(request.readOnly)
    }

    mutating func readConnectResponse() throws(JuteDecodingError) -> ConnectResponse {
        let version = try self.readJuteInt()
        let timeout = try self.readJuteInt()
        let sessionID = try self.readJuteLong()
        let password = try self.readJuteBuffer()
        // Servers before 3.4 omit the readOnly flag.
        let readOnly = self.readableBytes > 0 ? try self.readJuteBool() : false
        return ConnectResponse(protocolVersion: version, timeout: timeout, sessionID: sessionID, password: password, readOnly: readOnly)
    }

    mutating func writeConnectResponse(_ response: ConnectResponse) {
        self.writeInteger(response.protocolVersion)
        self.writeInteger(response.timeout)
        self.writeInteger(response.sessionID)
        self.writeJuteBuffer(response.password)
        self.writeJuteBool(response.readOnly)
    }

    mutating func readWatcherEvent() throws(JuteDecodingError) -> WatcherEvent {
        WatcherEvent(type: try self.readJuteInt(), state: try self.readJuteInt(), path: try self.readJuteString())
    }
}
