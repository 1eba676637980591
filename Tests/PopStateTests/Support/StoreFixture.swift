import Foundation
import Logging
@testable import PopState

/// The stores the conformance suite runs against. The ZooKeeper store joins this list when it exists.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case embedded

    var description: String { rawValue }

    func makeFixture() throws -> StoreFixture {
        switch self {
        case .embedded: try StoreFixture(folder: TemporaryFolder.make())
        }
    }
}

/// One backing store for a test; each ``open(sessionTimeout:)`` is a new handle with its own session.
final class StoreFixture: Sendable {
    let folder: String

    init(folder: String) {
        self.folder = folder
    }

    func open(sessionTimeout: Duration = .seconds(10)) async throws -> any CoordinationStore {
        try await EmbeddedStore.open(folder: folder, options: Self.options(sessionTimeout: sessionTimeout))
    }

    static func options(sessionTimeout: Duration = .seconds(10)) -> EmbeddedStore.Options {
        var logger = Logger(label: "pop.store.test")
        logger.logLevel = .critical
        return EmbeddedStore.Options(sessionTimeout: sessionTimeout, logger: logger)
    }

    /// Makes `store`'s session expire as if its process hung: its heartbeats stop.
    func stopHeartbeats(_ store: any CoordinationStore) {
        (store as! EmbeddedStore).suspendHeartbeats()
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: folder)
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
    let fixture = try kind.makeFixture()
    defer { fixture.remove() }
    return try await body(fixture)
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
