import Foundation
import Synchronization
import Logging
@testable import PopState
import ZooKeeperNIO
import ZooKeeperTestSupport

/// The stores the conformance suite runs against: the embedded store (as the agent opens it, with a pool of
/// connections, and as a command does, with one), and a real ZooKeeper server.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case embedded
    case embeddedOneConnection = "embedded, one connection"
    case zooKeeper

    var description: String { rawValue }

    func makeFixture() async throws -> StoreFixture {
        switch self {
        case .embedded:
            return StoreFixture(.embedded(folder: try TemporaryFolder.make()))
        case .embeddedOneConnection:
            // One connection is for a store that exists: a new one is set up by a pool, as `pop init` leaves it.
            let folder = try TemporaryFolder.make()
            let setup = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
            await setup.close()
            return StoreFixture(.embedded(folder: folder, connections: .single))
        case .zooKeeper:
            // One server for the whole test process; each fixture works in its own chroot.
            let server = try await ZooKeeperServer.shared()
            let chroot = "/pop-state-tests-" + UUID().uuidString
            let setup = try await ZooKeeperClient.connect(ZooKeeperConfiguration(connectString: server.connectString))
            _ = try await setup.create(chroot, data: [])
            await setup.close()
            return StoreFixture(.zooKeeper(host: server.host, port: server.clientPort, chroot: chroot))
        }
    }
}

/// One backing store for a test; each ``open(sessionTimeout:)`` is a new handle with its own session.
final class StoreFixture: Sendable {
    enum Backing: Sendable {
        case embedded(folder: String, connections: EmbeddedStore.Connections = .pool)
        case zooKeeper(host: String, port: Int, chroot: String)
    }

    let backing: Backing
    /// For ZooKeeper, each handle connects through its own proxy, so one handle can be cut off alone.
    private let proxies = Mutex<[Int64: ZooKeeperTestProxy]>([:])

    init(_ backing: Backing) {
        self.backing = backing
    }

    convenience init(folder: String) {
        self.init(.embedded(folder: folder))
    }

    /// The embedded store's folder (empty for ZooKeeper).
    var folder: String {
        if case .embedded(let folder, _) = backing { return folder }
        return ""
    }

    func open(sessionTimeout: Duration = .seconds(10)) async throws -> any CoordinationStore {
        switch backing {
        case .embedded(let folder, let connections):
            var options = Self.options(sessionTimeout: sessionTimeout)
            options.connections = connections
            return try await EmbeddedStore.open(folder: folder, options: options)
        case .zooKeeper(let host, let port, let chroot):
            var logger = Logger(label: "pop.store.test")
            logger.logLevel = .critical
            let proxy = try await ZooKeeperTestProxy.start(forwardingTo: host, port: port)
            let store = try await ZooKeeperStore.open(
                servers: [StoreConfiguration.Server(host: "127.0.0.1", port: proxy.port)], chroot: chroot,
                sessionTimeout: sessionTimeout, logger: logger)
            proxies.withLock { $0[store.sessionID] = proxy }
            return store
        }
    }

    static func options(sessionTimeout: Duration = .seconds(10)) -> EmbeddedStore.Options {
        var logger = Logger(label: "pop.store.test")
        logger.logLevel = .critical
        return EmbeddedStore.Options(sessionTimeout: sessionTimeout, logger: logger)
    }

    /// Makes `store`'s session expire as if its process hung.
    ///
    /// The embedded store's heartbeats stop. A ZooKeeper handle's proxy swallows everything (a partition), so the
    /// server hears nothing from it and expires its session; ``healPartition(_:)`` lets the handle learn of it.
    func stopHeartbeats(_ store: any CoordinationStore) async throws {
        switch backing {
        case .embedded:
            (store as! EmbeddedStore).suspendHeartbeats()
        case .zooKeeper:
            proxies.withLock { $0[store.sessionID] }?.setMode(.blackhole)
        }
    }

    /// Ends the partition ``stopHeartbeats(_:)`` began, for a ZooKeeper handle: it reconnects and hears that its
    /// session expired. Nothing to do for the embedded store, whose handle sees its own session's end.
    func healPartition(_ store: any CoordinationStore) {
        guard case .zooKeeper = backing, let proxy = proxies.withLock({ $0[store.sessionID] }) else { return }
        proxy.setMode(.refusing)
        proxy.setMode(.forwarding)
    }

    func remove() async {
        switch backing {
        case .embedded(let folder, _):
            try? FileManager.default.removeItem(atPath: folder)
        case .zooKeeper:
            // Each chroot is unique; the shared server's data folder is removed with it.
            for proxy in proxies.withLock({ Array($0.values) }) { await proxy.stop() }
        }
    }
}

enum TemporaryFolder {
    /// A new empty folder under the system's temporary folder.
    static func make() throws -> String {
        let path = NSTemporaryDirectory() + "pop-state-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

struct TimeoutError: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TimeoutError`` when it takes longer than `seconds`.
func within<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let value = try await group.next()! else { throw TimeoutError(what: what) }
        return value
    }
}

/// Runs `body` with a fixture and store handles closed afterwards.
func withStores<T>(
    _ kind: StoreKind, _ body: (StoreFixture) async throws -> T
) async throws -> T {
    let fixture = try await kind.makeFixture()
    do {
        let result = try await body(fixture)
        await fixture.remove()
        return result
    } catch {
        await fixture.remove()
        throw error
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

extension AsyncSequence {
    /// The sequence's elements, up to `limit`.
    func collect(_ limit: Int = .max) async throws -> [Element] {
        var elements: [Element] = []
        guard limit > 0 else { return elements }
        for try await element in self {
            elements.append(element)
            if elements.count == limit { break }
        }
        return elements
    }
}
