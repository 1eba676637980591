import Foundation
import Synchronization
import Testing

@testable import PopState

/// `pop status --wait` and `pop run` read again when the store changes, and a burst of changes costs one more read,
/// not one per change.
@Suite(.timeLimit(.minutes(5)))
struct WaitingTests {
    @Test(arguments: StoreKind.allCases)
    func aBurstOfChangesCostsOneMoreRead(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let reader = try await fixture.open()
            let writer = try await fixture.open()
            _ = try await writer.create("/burst", data: [], mode: .persistent)
            let namespace = try PopNamespace(store: reader)
            let reads = Atomic(0)
            // The first read comes after the watch is set: the writer starts then.
            let (watching, watchSet) = AsyncStream<Void>.makeStream()
            let burst = 200
            // Never satisfied: the wait reads as often as it is woken until the deadline, which shows what the burst
            // cost. Reading once per change would be 200 reads, each of 200 children. The deadline counts from here,
            // before the first read and the burst's write: on a loaded machine those took over 3 s.
            async let waited = namespace.read(
                {
                    if reads.add(1, ordering: .relaxed).newValue == 1 { watchSet.yield() }
                    return try await reader.children("/burst")
                },
                until: { $0.count > burst }, wokenByChangesUnder: "/burst", deadline: .now + .seconds(15))
            var ready = watching.makeAsyncIterator()
            await ready.next()
            _ = try await writer.multi((0..<burst).map { .create("/burst/n\($0)", data: []) })
            #expect(try await waited == nil, "the deadline ends the wait")
            let count = reads.load(ordering: .relaxed)
            #expect(count >= 2, "the burst woke the reader")
            #expect(count <= 10, "\(count) reads for one burst of \(burst) changes")
            await writer.close()
            await reader.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aChangeEndsTheWaitOnceItsConditionHolds(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let reader = try await fixture.open()
            let writer = try await fixture.open()
            _ = try await writer.create("/cond", data: [], mode: .persistent)
            let namespace = try PopNamespace(store: reader)
            let (watching, watchSet) = AsyncStream<Void>.makeStream()
            async let waited = namespace.read(
                {
                    watchSet.yield()
                    return try await reader.children("/cond")
                },
                until: { $0.contains("done") }, wokenByChangesUnder: "/cond", deadline: .now + .seconds(30))
            var ready = watching.makeAsyncIterator()
            await ready.next()
            _ = try await writer.create("/cond/done", data: [], mode: .persistent)
            #expect(try await waited == ["done"])
            await writer.close()
            await reader.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func theDeadlineEndsTheWaitWhenNothingChanges(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            _ = try await store.create("/quiet", data: [], mode: .persistent)
            let namespace = try PopNamespace(store: store)
            let result = try await namespace.read(
                { try await store.children("/quiet") }, until: { !$0.isEmpty }, wokenByChangesUnder: "/quiet",
                deadline: .now + .milliseconds(300))
            #expect(result == nil)
            await store.close()
        }
    }
}
