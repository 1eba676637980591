import Foundation
import Testing
@testable import PopState

/// A service's history on both stores: kept in the same multi-operation as each change, bounded, and a legacy
/// service's first change keeps the spec it had.
@Suite(.timeLimit(.minutes(5)))
struct ServiceHistoryTests {
    static let origin = ChangeOrigin(user: "ops@host-a", command: "pop config web --port 9000")

    func withNamespace(_ kind: StoreKind, _ body: (PopNamespace) async throws -> Void) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let namespace = try PopNamespace(store: store)
            try await namespace.initialize(force: false)
            try await body(namespace)
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func everyChangeIsKeptWithItsOriginAndTheOldestGoBeyondTheLimit(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace in
            let web = try PopNamespaceTests.spec("web")
            try await namespace.addService(web, origin: ChangeOrigin(user: "ops@host-a", command: "pop add web"))
            var history = try await namespace.history(web.name)
            #expect(history.versions == [0] && history.version == 0 && history.settings.limit == 20)

            try await namespace.setHistoryLimit(web.name, try HistorySettings(limit: 3))
            for port in 9001...9004 {
                history = try await namespace.history(web.name)
                try await namespace.changeService(
                    try PopNamespaceTests.spec("web", port: port), from: history, origin: Self.origin)
            }
            let (kept, entries) = try await namespace.historyEntries(web.name)
            #expect(kept.versions == [2, 3, 4])
            #expect(kept.version == 4 && kept.current.version == 4)
            #expect(entries.map(\.spec.options["port"]) == [.int(9002), .int(9003), .int(9004)])
            #expect(entries.allSatisfy { $0.user == "ops@host-a" && $0.command == Self.origin.command })
            #expect(entries.map(\.signature) == entries.map(\.spec.signature))
            #expect(entries.last?.signature == kept.current.signature)

            let unknown = await #expect(throws: PopError.self) { try await namespace.historyEntry(web.name, version: 1) }
            #expect(unknown?.code == .notFound)
            #expect(unknown?.message.contains("versions 2 to 4") == true)

            // The limit is a bound, not a suggestion: lowering it deletes the oldest at once.
            try await namespace.setHistoryLimit(web.name, try HistorySettings(limit: 1))
            #expect(try await namespace.history(web.name).versions == [4])
            #expect(throws: PopError.self) { try HistorySettings(limit: 0) }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aChangeFromAStaleReadIsRefusedAndLeavesTheHistoryAlone(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace in
            let web = try PopNamespaceTests.spec("web")
            try await namespace.addService(web)
            let read = try await namespace.history(web.name)
            try await namespace.changeService(try PopNamespaceTests.spec("web", port: 9001), from: read, origin: Self.origin)
            let stale = await #expect(throws: PopError.self) {
                try await namespace.changeService(
                    try PopNamespaceTests.spec("web", port: 9002), from: read, origin: Self.origin)
            }
            #expect(stale?.code == .conflict)
            let after = try await namespace.history(web.name)
            #expect(after.versions == [0, 1])
            #expect(after.current.spec.options["port"] == .int(9001))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aServiceWithoutHistoryKeepsItsSpecOnItsFirstChange(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace in
            // As an earlier release wrote it: no history node.
            let web = try PopNamespaceTests.spec("web")
            let paths = namespace.paths
            _ = try await namespace.store.multi([
                .create(paths.service(web.name), data: web.canonicalEncoding()),
                .create(paths.packages(web.name), data: Array("[]".utf8)),
                .create(paths.placements(web.name), data: []),
                .create(paths.tasks(web.name), data: []),
            ])
            _ = try await namespace.store.set(paths.service(web.name), data: web.canonicalEncoding(), version: 0)
            let legacy = try await namespace.history(web.name)
            #expect(!legacy.exists && legacy.versions.isEmpty && legacy.version == 1)

            // updateService (what the dashboard calls) keeps history too.
            #expect(try await namespace.updateService(try PopNamespaceTests.spec("web", port: 9001), expectedVersion: 1) == 2)
            let (history, entries) = try await namespace.historyEntries(web.name)
            #expect(history.versions == [1, 2])
            #expect(entries.first?.spec == web)
            #expect(entries.last?.spec.options["port"] == .int(9001))
        }
    }
}
