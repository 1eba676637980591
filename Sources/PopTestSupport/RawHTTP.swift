import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 requests written byte for byte, so a test controls every header (Host, Origin, Cookie, Authorization)
/// the way a stranger or a forged request would, on a thread of its own.
public enum RawHTTP {
    public struct Response: Sendable, CustomStringConvertible {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        public var description: String { "\(status) \(headers) \(body.prefix(300))" }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// A GET of `target` from `host:port` (an IPv4 address) with `headers`; the answer must end within `timeout`
    /// seconds.
    public static func get(
        host: String, port: Int, target: String, headers: [String: String] = [:], timeout: Int = 30
    ) async throws -> Response {
        try await request(host: host, port: port, path: target, headers: headers, timeout: timeout)
    }

    /// Sends one request and reads the response until the server closes the connection or, for an event stream,
    /// until `until` appears in the body (or `timeout` seconds pass).
    public static func request(
        host: String = "127.0.0.1", port: Int, method: String = "GET", path: String, headers: [String: String] = [:],
        body: String? = nil, until: String? = nil, timeout: Int = 15
    ) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(
                    with: Result {
                        try blocking(
                            host: host, port: port, method: method, path: path, headers: headers, body: body,
                            until: until, timeout: timeout)
                    })
            }
        }
    }

    /// Opens a request whose response streams (server-sent events) and runs `body` while it is open; then, with
    /// `until`, reads on until that appears in the response (or 60 s of silence pass), closes the connection, and
    /// returns `body`'s result with what was received. The connection lives at least as long as `body`, however
    /// slowly the server answers.
    public static func whileOpen<T>(
        host: String = "127.0.0.1", port: Int, path: String, headers: [String: String] = [:], until: String? = nil,
        _ body: () async throws -> T
    ) async throws -> (T, Response) {
        let fd = try connectAndSend(
            host: host, port: port, method: "GET", path: path, headers: headers, body: nil, timeout: 60)
        defer { close(fd) }
        return try await withThrowingTaskGroup(of: [UInt8].self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    Thread.detachNewThread { continuation.resume(returning: receive(fd, until: until)) }
                }
            }
            let result: T
            do {
                result = try await body()
            } catch {
                shutdown(fd, Int32(SHUT_RDWR))
                _ = try? await group.next()
                throw error
            }
            if until == nil { shutdown(fd, Int32(SHUT_RDWR)) }
            let received = try await group.next() ?? []
            shutdown(fd, Int32(SHUT_RDWR))
            return (result, try parse(received, from: "\(host):\(port)"))
        }
    }

    private static func blocking(
        host: String, port: Int, method: String, path: String, headers: [String: String], body: String?, until: String?, timeout: Int
    ) throws -> Response {
        let fd = try connectAndSend(
            host: host, port: port, method: method, path: path, headers: headers, body: body, timeout: timeout)
        defer { close(fd) }
        return try parse(receive(fd, until: until), from: "\(host):\(port)")
    }

    /// A connected socket that has sent the request; reads on it time out after `timeout` seconds of silence (0: never).
    private static func connectAndSend(
        host: String, port: Int, method: String, path: String, headers: [String: String], body: String?, timeout: Int
    ) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed") }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw Failure(description: "not an IPv4 address: \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            close(fd)
            throw Failure(description: "connect to \(host):\(port) failed: errno \(error)")
        }
        var lines = ["\(method) \(path) HTTP/1.1"]
        var all = headers
        if all["Host"] == nil { all["Host"] = "\(host):\(port)" }
        all["Connection"] = "close"
        if let body { all["Content-Length"] = String(body.utf8.count) }
        for (name, value) in all.sorted(by: { $0.key < $1.key }) { lines.append("\(name): \(value)") }
        let request = lines.joined(separator: "\r\n") + "\r\n\r\n" + (body ?? "")
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else {
                close(fd)
                throw Failure(description: "send failed")
            }
            sent += count
        }
        return fd
    }

    /// What arrives on `fd` until the server closes it, a read times out, or `until` appears.
    private static func receive(_ fd: Int32, until: String?) -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            received += buffer[0..<count]
            if let until, String(decoding: received, as: UTF8.self).contains(until) { break }
        }
        return received
    }

    private static func parse(_ received: [UInt8], from server: String) throws -> Response {
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else {
            throw Failure(description: "no HTTP response from \(server): \(text.prefix(200))")
        }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = head.first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        let fields = head.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var payload = String(text[split.upperBound...])
        if fields.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased() == "chunked" }) {
            payload = unchunk(payload)
        }
        return Response(status: status, headers: fields, body: payload)
    }

    /// Runs `body` while a socket of this process listens on a port of 127.0.0.1 (so that port is in use).
    public static func listening<T>(_ body: (Int) async throws -> T) async throws -> T {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 && listen(fd, 1) == 0
            }
        }
        guard bound else { throw Failure(description: "could not listen on 127.0.0.1") }
        return try await body(Int(UInt16(bigEndian: address.sin_port)))
    }

    /// The body of a chunked response (as far as it was read).
    private static func unchunk(_ text: String) -> String {
        var rest = Substring(text)
        var body = ""
        while let end = rest.range(of: "\r\n"), let size = Int(rest[..<end.lowerBound], radix: 16), size > 0 {
            let start = end.upperBound
            let stop = rest.utf8.index(start, offsetBy: size, limitedBy: rest.utf8.endIndex) ?? rest.endIndex
            body += rest[start..<stop]
            rest = rest[stop...].dropFirst(2)
        }
        return body
    }
}
