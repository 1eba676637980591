#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One health probe in flight: a non-blocking loopback connection, then (for HTTP) one request and its status line.
///
/// Driven by the supervisor's event loop: ``start(_:)`` either finishes at once (loopback connects usually do) or
/// says which readiness to wait for, and ``resume()`` continues after each wake-up.
struct HealthProbeConnection: Sendable {
    /// What the probe needs next.
    enum Step: Hashable, Sendable {
        /// Wait until the socket is writable (connecting).
        case waitWritable
        /// Wait until the socket is readable (the HTTP answer).
        case waitReadable
        /// The probe is over; the socket is closed.
        case finished(healthy: Bool, detail: String)
    }

    /// The socket, or -1 once closed.
    private(set) var socket: Int32
    private let target: HealthProbe.Target
    private var connected = false
    private var response: [UInt8] = []

    private init(socket: Int32, target: HealthProbe.Target) {
        self.socket = socket
        self.target = target
    }

    /// Opens the connection and goes as far as it can without waiting.
    static func start(_ target: HealthProbe.Target) -> (HealthProbeConnection, Step) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var connection = HealthProbeConnection(socket: fd, target: target)
        guard fd >= 0 else {
            return (connection, .finished(healthy: false, detail: "could not open a socket: \(String(cString: strerror(errno)))"))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = connection.port.bigEndian
        inet_pton(AF_INET, connection.host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result == 0 {
            return (connection, connection.connectedStep())
        }
        if errno == EINPROGRESS {
            return (connection, .waitWritable)
        }
        return (connection, connection.finish(healthy: false, detail: connection.describeConnectError(errno)))
    }

    /// Continues after the socket became ready.
    mutating func resume() -> Step {
        if !connected {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                return finish(healthy: false, detail: describeConnectError(error))
            }
            return connectedStep()
        }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return .waitReadable }
        if count > 0 { response += buffer[..<count] }
        let lineComplete = response.firstIndex(of: UInt8(ascii: "\n")) != nil
        guard count <= 0 || lineComplete || response.count >= 1024 else { return .waitReadable }
        guard let code = HealthProbe.statusCode(ofResponse: response) else {
            return finish(healthy: false, detail: "\(url) did not answer with an HTTP status line")
        }
        return finish(healthy: (200..<400).contains(code), detail: "\(url) answered \(code)")
    }

    /// Gives up (the probe timed out) and closes the socket.
    mutating func cancel() {
        if socket >= 0 { close(socket) }
        socket = -1
    }

    private mutating func connectedStep() -> Step {
        connected = true
        guard case .http(let host, let port, let path) = target else {
            return finish(healthy: true, detail: "port \(self.port) accepts connections")
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nUser-Agent: pop\r\nConnection: close\r\n\r\n".utf8)
        let written = request.withUnsafeBytes { write(socket, $0.baseAddress, $0.count) }
        guard written == request.count else {
            return finish(healthy: false, detail: "could not send the request to \(url)")
        }
        return .waitReadable
    }

    private mutating func finish(healthy: Bool, detail: String) -> Step {
        cancel()
        return .finished(healthy: healthy, detail: detail)
    }

    private func describeConnectError(_ code: Int32) -> String {
        "connecting to \(host):\(port) failed: \(String(cString: strerror(code)))"
    }

    private var host: String {
        if case .http(let host, _, _) = target { return host }
        return "127.0.0.1"
    }

    private var port: UInt16 {
        switch target {
        case .tcp(let port), .http(_, let port, _): port
        }
    }

    private var url: String {
        if case .http(let host, let port, let path) = target { return "http://\(host):\(port)\(path)" }
        return "tcp://127.0.0.1:\(port)"
    }
}
