import Foundation
import Testing

@testable import PopState

/// The embedded store's database file holds the state, not only its write-ahead log: a copy of `store.sqlite` alone
/// (what a careless backup takes) has every change a handle made before it closed, and all but the last few of a
/// handle that stays open.
@Suite(.timeLimit(.minutes(5)))
struct EmbeddedStoreCheckpointTests {
    @Test func aCopyOfTheDatabaseFileAloneHoldsWhatAClosedHandleWrote() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A long-lived handle (an agent) stays open throughout, so no close is the last one.
        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        _ = try await agent.create("/agent", data: [], mode: .ephemeral)
        for index in 0..<16 {
            let command = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
            _ = try await command.create("/s\(index)", data: Array("spec \(index)".utf8), mode: .persistent)
            await command.close()
        }
        let copy = try copyOfDatabaseFile(folder)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let restored = try await EmbeddedStore.open(folder: copy, options: StoreFixture.options())
        for index in 0..<16 {
            #expect(try await restored.get("/s\(index)").data == Array("spec \(index)".utf8))
        }
        await restored.close()
        await agent.close()
    }

    @Test func aHandleThatStaysOpenIsCheckpointedAsItWrites() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        let writes = 100
        for index in 0..<writes {
            _ = try await agent.create("/n\(index)", data: Array(repeating: 0x61, count: 200), mode: .persistent)
        }
        let copy = try copyOfDatabaseFile(folder)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let restored = try await EmbeddedStore.open(folder: copy, options: StoreFixture.options())
        let count = try await restored.children("/").count
        // The log is checkpointed once it holds 64 pages: a few writes' worth, not the 1,000 pages (about 4 MB, that
        // is all 100 writes here) SQLite waits for by default.
        #expect(count >= writes - 30, "the database file alone has \(count) of \(writes) nodes")
        await restored.close()
        await agent.close()
    }

    @Test func openingAndReadingWriteNothing() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let writer = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        _ = try await writer.create("/x", data: [1], mode: .persistent)
        await writer.close()
        let before = try fileStates(folder)
        let reader = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        #expect(reader.sessionID == 0, "no session until the first write")
        #expect(try await reader.get("/x").data == [1])
        #expect(try await reader.children("/") == ["x"])
        await reader.close()
        #expect(try fileStates(folder) == before, "a reader changed the store's files")
    }

    /// Copies `store.sqlite`, and only it, into a new folder.
    func copyOfDatabaseFile(_ folder: String) throws -> String {
        let copy = try TemporaryFolder.make()
        try FileManager.default.copyItem(atPath: folder + "/store.sqlite", toPath: copy + "/store.sqlite")
        return copy
    }

    /// Each file's size and modification time.
    func fileStates(_ folder: String) throws -> [String: String] {
        var states: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            var info = stat()
            stat(folder + "/" + name, &info)
            states[name] = "\(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
        return states
    }
}
