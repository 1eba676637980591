import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// The outcome of the WebSocket upgrade request.
private enum Upgrade: Sendable {
    case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
    case refused
}

/// A JSON object from the DevTools protocol (plain JSON values only, never mutated after decoding).
public struct DevToolsObject: @unchecked Sendable {
    /// The decoded object.
    public let fields: [String: Any]

    init(_ fields: [String: Any]) {
        self.fields = fields
    }

    /// The value at `key`, as a nested object.
    public func object(_ key: String) -> DevToolsObject? {
        (fields[key] as? [String: Any]).map(DevToolsObject.init)
    }

    /// The string at `key`.
    public func string(_ key: String) -> String? { fields[key] as? String }
}

/// Why a DevTools command or the connection failed.
public struct DevToolsError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// One WebSocket connection to a browser's DevTools endpoint: commands with ids and their replies, and events.
///
/// Sessions of targets are reached through it with `sessionId` (flat mode): every command and event names the
/// session it belongs to.
public final class DevToolsConnection: Sendable {
    /// An event: its method, session and parameters.
    public struct Event: Sendable {
        public var method: String
        public var sessionID: String?
        public var params: DevToolsObject
    }

    private struct State {
        var nextID = 1
        var pending: [Int: EventLoopPromise<DevToolsObject>] = [:]
        var listeners: [Int: @Sendable (Event) -> Void] = [:]
        var nextListener = 0
        var closed: (any Error)?
    }

    private let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    private let state = Mutex(State())

    private init(outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>) {
        self.outbound = outbound
    }

    /// Connects to `ws://127.0.0.1:PORT/PATH`, runs `body` with the connection while a reader takes its messages,
    /// and closes it afterwards.
    public static func with<T: Sendable>(
        port: Int, path: String, _ body: @escaping @Sendable (DevToolsConnection) async throws -> T
    ) async throws -> T {
        let upgrade: EventLoopFuture<Upgrade> = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(
                        maxFrameSize: 1 << 28,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                Upgrade.websocket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "127.0.0.1:\(port)")
                    headers.add(name: "Content-Length", value: "0")
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration(
                        upgradeRequestHead: head, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeCompletedFuture { .refused } })
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(upgradeConfiguration: configuration))
                }
            }
        guard case .websocket(let channel) = try await upgrade.get() else {
            throw DevToolsError("127.0.0.1:\(port)\(path) refused the WebSocket upgrade")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let connection = DevToolsConnection(outbound: outbound)
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    await connection.read(inbound)
                    return nil
                }
                group.addTask { try await body(connection) }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw DevToolsError("the DevTools connection ended")
            }
        }
    }

    /// Sends a command (to a target's session when `session` is given) and returns its result.
    @discardableResult
    public func send(_ method: String, _ params: [String: Any] = [:], session: String? = nil) async throws -> DevToolsObject {
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        var message: [String: Any] = ["id": id, "method": method, "params": params]
        if let session { message["sessionId"] = session }
        let data = try JSONSerialization.data(withJSONObject: message)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: data))
        // Registered before the command is written, so that no reply can arrive before its waiter.
        let promise = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: DevToolsObject.self)
        let closed = state.withLock { state -> (any Error)? in
            if let closed = state.closed { return closed }
            state.pending[id] = promise
            return nil
        }
        if let closed {
            promise.fail(closed)
            throw closed
        }
        do {
            try await outbound.write(frame)
        } catch {
            let waiting = state.withLock { $0.pending.removeValue(forKey: id) }
            waiting?.fail(error)
            throw error
        }
        return try await promise.futureResult.get()
    }

    /// Calls `handler` with every event from now on, on the connection's reader (so it must be quick and must not
    /// wait), until the connection ends.
    public func onEvent(_ handler: @escaping @Sendable (Event) -> Void) {
        state.withLock { state in
            state.listeners[state.nextListener] = handler
            state.nextListener += 1
        }
    }

    /// Reads frames until the connection closes: replies resume their commands, events go to the listeners.
    private func read(_ inbound: NIOAsyncChannelInboundStream<WebSocketFrame>) async {
        var message = ByteBuffer()
        var ending: any Error = DevToolsError("the browser closed the DevTools connection")
        do {
            for try await frame in inbound {
                switch frame.opcode {
                case .text, .binary, .continuation:
                    var data = frame.unmaskedData
                    message.writeBuffer(&data)
                    guard frame.fin else { continue }
                    dispatch(message)
                    message.clear()
                case .ping:
                    try await outbound.write(
                        WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData))
                case .connectionClose:
                    break
                default:
                    continue
                }
                if frame.opcode == .connectionClose { break }
            }
        } catch {
            ending = error
        }
        let pending = state.withLock { state in
            state.closed = ending
            defer {
                state.pending = [:]
                state.listeners = [:]
            }
            return state.pending
        }
        for waiter in pending.values { waiter.fail(ending) }
    }

    private func dispatch(_ buffer: ByteBuffer) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        else { return }
        if let id = object["id"] as? Int {
            let waiter = state.withLock { $0.pending.removeValue(forKey: id) }
            if let error = object["error"] as? [String: Any] {
                waiter?.fail(DevToolsError("\(error["message"] ?? "error") (\(error["data"] ?? ""))"))
            } else {
                waiter?.succeed(DevToolsObject(object["result"] as? [String: Any] ?? [:]))
            }
            return
        }
        guard let method = object["method"] as? String else { return }
        let event = Event(
            method: method, sessionID: object["sessionId"] as? String,
            params: DevToolsObject(object["params"] as? [String: Any] ?? [:]))
        let listeners = state.withLock { Array($0.listeners.values) }
        for listener in listeners { listener(event) }
    }
}
