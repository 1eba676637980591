import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PopState
import Synchronization

/// Asks agents' endpoints: one signed GET per connection, its answer read as it streams.
///
/// A plain HTTP/1.1 client on SwiftNIO (TCP or a unix socket, TLS when the endpoint says `https`): every request
/// carries a signature made with the namespace's endpoint key (``RequestSignature``), never the key itself. A
/// connection that stays silent for longer than its read timeout is closed, so a hung agent shows as unreachable.
public struct EndpointClient: Sendable {
    private let key: EndpointKey
    private let trust: NIOSSLTrustRoots
    /// How long a connection may take to open.
    public var connectTimeout: TimeAmount = .seconds(2)

    /// A client signing with `key`. TLS endpoints are checked against the certificates in `POP_TLS_CA` (a PEM file)
    /// when set, else the system's.
    public init(key: EndpointKey, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.key = key
        if let file = environment["POP_TLS_CA"], !file.isEmpty {
            trust = .file(file)
        } else {
            trust = .default
        }
    }

    /// An answer: its status, and its body read as it arrives.
    public struct Answer {
        /// The HTTP status code.
        public let status: Int
        private var parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        private let address: EndpointAddress

        init(status: Int, parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator, address: EndpointAddress) {
            self.status = status
            self.parts = parts
            self.address = address
        }

        /// The body's next piece; nil at its end. Throws when the connection fails or closes before the end.
        public mutating func next() async throws -> ByteBuffer? {
            while let part = try await parts.next() {
                switch part {
                case .body(let buffer): return buffer
                case .end: return nil
                case .head: continue
                }
            }
            throw PopError(.storeUnreachable, "The agent's endpoint at \(address) closed the connection.")
        }

        /// The whole body, as text (for short answers such as errors).
        public mutating func text(limit: Int = 1 << 20) async throws -> String {
            var bytes: [UInt8] = []
            while let buffer = try await next(), bytes.count < limit { bytes += buffer.readableBytesView }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Sends `GET path?query` to `address` and hands the answer to `body`, closing the connection when it returns.
    /// `readTimeout` closes a connection that received nothing for that long.
    public func get<T: Sendable>(
        _ address: EndpointAddress, path: String, query: [(String, String)], readTimeout: TimeAmount,
        _ body: (inout Answer) async throws -> T
    ) async throws -> T {
        let target = path + (query.isEmpty ? "" : "?" + query.map { Self.encode($0.0) + "=" + Self.encode($0.1) }.joined(separator: "&"))
        let authorization = RequestSignature.authorization(method: "GET", target: target, key: key)
        let closer = ReadTimeoutCloser()
        let channel = try await connect(address, readTimeout: readTimeout, closer: closer)
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: address.target ?? "localhost")
                headers.add(name: "Authorization", value: authorization)
                headers.add(name: "User-Agent", value: "pop")
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)))
                try await outbound.write(.end(nil))
                var parts = inbound.makeAsyncIterator()
                guard case .head(let head) = try await parts.next() else {
                    throw PopError(.storeUnreachable, "The agent's endpoint at \(address) closed the connection without answering.")
                }
                var answer = Answer(status: Int(head.status.code), parts: parts, address: address)
                return try await body(&answer)
            }
        } catch let error as PopError where error.code != .storeUnreachable || !closer.fired {
            throw error
        } catch where closer.fired {
            // The connection was closed under the request or the answer: say why, not what the channel saw of it.
            throw Self.silent(address, readTimeout)
        } catch let error where error is ChannelError || error is IOError {
            throw PopError(.storeUnreachable, "The connection to the agent's endpoint at \(address) failed: \(error).")
        }
    }

    /// The error of a connection closed because the endpoint sent nothing for `readTimeout`.
    static func silent(_ address: EndpointAddress, _ readTimeout: TimeAmount) -> PopError {
        let seconds = String(format: "%g", Double(readTimeout.nanoseconds) / 1e9)
        return PopError(
            .storeUnreachable, "The agent's endpoint at \(address) sent nothing for \(seconds) s; the connection was closed.",
            hint: "The agent or its machine may be overloaded or hung; `pop machines` shows whether it is registered.")
    }

    private func connect(
        _ address: EndpointAddress, readTimeout: TimeAmount, closer: ReadTimeoutCloser
    ) async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(connectTimeout)
        let tlsContext: NIOSSLContext?
        var serverName: String?
        if address.tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = trust
            tlsContext = try NIOSSLContext(configuration: configuration)
            if case .tcp(let host, _) = address.location, !host.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) {
                serverName = host
            }
        } else {
            tlsContext = nil
        }
        let setUp: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>> = {
            channel in
            channel.eventLoop.makeCompletedFuture {
                let pipeline = channel.pipeline.syncOperations
                if let tlsContext {
                    try pipeline.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                }
                try pipeline.addHandler(IdleStateHandler(readTimeout: readTimeout))
                try pipeline.addHandler(closer)
                try pipeline.addHTTPClientHandlers()
                return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
            }
        }
        do {
            switch address.location {
            case .tcp(let host, let port):
                return try await bootstrap.connect(host: host, port: port, channelInitializer: setUp)
            case .unix(let path):
                return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: setUp)
            }
        } catch {
            throw PopError(.storeUnreachable, "Cannot reach the agent's endpoint at \(address): \(error).")
        }
    }

    /// Percent-encodes everything but unreserved characters, so that the signed target is what the server reads.
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// Closes a connection on which nothing arrived within its read timeout (an agent that hangs, a network that drops),
/// and remembers that it did, so the request can say so.
final class ReadTimeoutCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    private let closed = Atomic(false)

    /// Whether this handler closed the connection.
    var fired: Bool { closed.load(ordering: .acquiring) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            closed.store(true, ordering: .releasing)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
