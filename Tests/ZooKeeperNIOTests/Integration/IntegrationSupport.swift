import Foundation
import Logging
import ZooKeeperNIO
import ZooKeeperTestSupport

/// Helpers for tests against a real server: one standalone server shared by the whole run, and a unique root
/// path per test so tests never see each other's nodes.
enum TestServer {
    /// The session of a test that is not about expiry: a minute, so that no pause of a loaded machine (the suite's
    /// start runs hundreds of tests, several JVMs and a browser at once) outlasts the client's read timeout, two
    /// thirds of it. Tests of expiry ask for their own short sessions.
    static let sessionTimeout = Duration.seconds(60)

    /// The shared standalone server (started on first use, killed when the test process exits).
    static func shared() async throws -> ZooKeeperServer {
        try await ZooKeeperServer.shared()
    }

    /// A configuration for `connectString` with short timeouts suited to tests.
    static func configuration(_ connectString: String, sessionTimeout: Duration = TestServer.sessionTimeout) throws -> ZooKeeperConfiguration {
        var configuration = try ZooKeeperConfiguration(connectString: connectString, sessionTimeout: sessionTimeout)
        configuration.connectTimeout = .seconds(10)
        var logger = Logger(label: "zookeeper-test")
        logger.logLevel = ProcessInfo.processInfo.environment["ZOOKEEPER_TEST_LOG"] == nil ? .warning : .debug
        configuration.logger = logger
        return configuration
    }

    /// A client of the shared server, optionally chrooted.
    static func client(chroot: String? = nil, sessionTimeout: Duration = TestServer.sessionTimeout) async throws -> ZooKeeperClient {
        let server = try await shared()
        return try await ZooKeeperClient.connect(try configuration(server.connectString + (chroot ?? ""), sessionTimeout: sessionTimeout))
    }

    /// A root path no other test uses, created on the shared server.
    static func uniqueRoot(_ name: String = #function) async throws -> String {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let root = "/test-\(clean)-\(UUID().uuidString.prefix(8))"
        let client = try await client()
        _ = try await client.create(root)
        await client.close()
        return root
    }
}

/// Runs `body` with a client and closes it afterwards, also when `body` throws.
func withClient<T>(
    chroot: String? = nil, sessionTimeout: Duration = TestServer.sessionTimeout, _ body: (ZooKeeperClient) async throws -> T
) async throws -> T {
    let client = try await TestServer.client(chroot: chroot, sessionTimeout: sessionTimeout)
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw error
    }
}

/// Runs `body` with a proxy in front of the shared server, stopped before this returns.
func withProxy<T>(_ body: (ZooKeeperTestProxy) async throws -> T) async throws -> T {
    let server = try await TestServer.shared()
    let proxy = try await ZooKeeperTestProxy.start(forwardingTo: server.host, port: server.clientPort)
    do {
        let result = try await body(proxy)
        await proxy.stop()
        return result
    } catch {
        await proxy.stop()
        throw error
    }
}

/// Waits for `operation` at most `timeout`, failing with a clear message instead of hanging the suite.
func withTimeout<T: Sendable>(_ timeout: Duration = .seconds(10), _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimeoutError(message: "timed out after \(timeout) waiting for \(what)")
        }
        let result = try await group.next()!
        group.cancelAll()
        return result
    }
}

struct TimeoutError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}

extension String {
    var bytes: [UInt8] { Array(self.utf8) }
}
