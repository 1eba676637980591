#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A plain GET on 127.0.0.1 (through ``RawHTTP``) and loopback port checks: just enough to see what a browser would see.
public enum LoopbackHTTP {
    /// What a GET returned.
    public struct Response: Sendable {
        /// The HTTP status code.
        public var status: Int
        /// The body, as text.
        public var body: String
    }

    /// Why a GET got no response.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `GET path` on 127.0.0.1:`port`, reading until the server closes the connection (at most `timeout` seconds per
    /// read), on a thread of its own so that no thread of the task pool blocks on the socket.
    public static func get(port: Int, path: String = "/", timeout: Int = 30) async throws -> Response {
        let answer = try await RawHTTP.request(port: port, path: path, timeout: timeout)
        return Response(status: answer.status, body: answer.body)
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` now.
    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connect(fd, port: port) == 0
    }

    /// Whether `port` can be bound on every address (0.0.0.0) now, the way Plone binds it by default.
    public static func isFree(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: INADDR_ANY)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }

    /// A port the kernel reports free now (bound to port 0, then released), not 8080 and not in `excluding`.
    public static func freePort(excluding: Set<Int> = []) throws -> Int {
        for _ in 0..<50 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { break }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr = in_addr(s_addr: INADDR_ANY)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
                }
            }
            guard bound else { continue }
            let port = Int(UInt16(bigEndian: address.sin_port))
            if port != 8080, !excluding.contains(port) { return port }
        }
        throw Failure(description: "no free TCP port found")
    }

    private static func connect(_ fd: Int32, port: Int) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}
