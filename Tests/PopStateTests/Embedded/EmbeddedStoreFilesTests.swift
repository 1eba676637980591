import Foundation
import Testing
@testable import PopState

@Suite(.timeLimit(.minutes(5)))
struct EmbeddedStoreFilesTests {
    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as! NSNumber).intValue & 0o777
    }

    @Test func theFolderAndFilesArePrivate() async throws {
        let parent = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let folder = parent + "/nested/pop"
        let store = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        _ = try await store.create("/x", data: [], mode: .persistent)
        #expect(store.description == "embedded store \(folder)/store.sqlite")
        #expect(try mode(folder) == 0o700)
        for file in ["store.sqlite", "store.sqlite-wal", "store.sqlite-shm", "store.sqlite-commit"] {
            #expect(try mode(folder + "/" + file) == 0o600, "\(file)")
        }
        await store.close()
    }

    @Test func aCommandHoldsOneConnectionOnceTheStoreIsInWALMode() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var single = StoreFixture.options()
        single.connections = .single
        // A new store is opened through the pool's path, which puts the database in WAL mode.
        let first = try await EmbeddedStore.open(folder: folder, options: single)
        #expect(!first.holdsOneConnection)
        _ = try await first.create("/a", data: [1], mode: .persistent)
        await first.close()
        let header = try #require(FileHandle(forReadingAtPath: folder + "/store.sqlite")).readData(ofLength: 20)
        #expect(Array(header.suffix(2)) == [2, 2], "the file format versions of WAL mode")
        // From then on a command's handle is one connection, beside an agent's pool: each sees the other's writes.
        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        let command = try await EmbeddedStore.open(folder: folder, options: single)
        #expect(command.holdsOneConnection)
        #expect(!agent.holdsOneConnection)
        #expect(try await command.get("/a").data == [1])
        _ = try await command.create("/b", data: [2], mode: .persistent)
        #expect(try await agent.get("/b").data == [2])
        _ = try await agent.create("/c", data: [3], mode: .persistent)
        #expect(try await command.get("/c").data == [3])
        await command.close()
        await agent.close()
    }

    @Test func aReadingCommandsHandleIsLeftToTheExitAndAWritingOnesIsClosed() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var single = StoreFixture.options()
        single.connections = .single
        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        _ = try await agent.create("/a", data: [1], mode: .persistent)

        // A handle that only read is marked closed: it refuses reads from then on.
        let reader = try await EmbeddedStore.open(folder: folder, options: single)
        #expect(try await reader.get("/a").data == [1])
        await reader.closeBeforeExit()
        let afterClose = await #expect(throws: PopError.self) { _ = try await reader.get("/a") }
        #expect(afterClose?.code == .storeUnreachable)
        #expect(afterClose?.message.contains("is closed") == true)

        // A handle that wrote holds a session: its ephemeral nodes are gone once closeBeforeExit returns.
        let writer = try await EmbeddedStore.open(folder: folder, options: single)
        _ = try await writer.create("/lock", data: [], mode: .ephemeral)
        #expect(try await agent.exists("/lock") != nil)
        await writer.closeBeforeExit()
        #expect(try await agent.exists("/lock") == nil)
        _ = try await agent.create("/b", data: [2], mode: .persistent)
        #expect(try await agent.get("/b").data == [2])
        await agent.close()
    }

    /// Whether this process maps the database file at `path` (the write-ahead log's index, `-shm`, is always mapped).
    func mapsDatabase(_ path: String) throws -> Bool {
        // Read to its end: /proc files have no size for a reader that goes by it.
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/maps"))
        defer { try? handle.close() }
        let maps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return maps.split(separator: "\n").contains { $0.hasSuffix(" " + path) }
    }

    @Test func aCommandsHandleReadsTheFileThroughAMapAndTheAgentsDoesNot() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/" + EmbeddedStore.databaseName
        var single = StoreFixture.options()
        single.connections = .single
        // Written and checkpointed into the file by closing, so that reading it reads the file, not the log.
        let first = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        _ = try await first.create("/a", data: [1], mode: .persistent)
        await first.close()

        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        #expect(try await agent.get("/a").data == [1])
        #expect(try !mapsDatabase(path), "the agent's connections read the file with read(2)")

        let command = try await EmbeddedStore.open(folder: folder, options: single)
        #expect(try await command.get("/a").data == [1])
        #expect(try mapsDatabase(path), "a command's connection maps the file")
        // What another handle writes afterwards, checkpointed into the file or not, is read through the map.
        for index in 0..<200 {
            _ = try await agent.create("/n\(index)", data: Array(repeating: UInt8(index & 0xff), count: 512), mode: .persistent)
        }
        _ = try await agent.set("/a", data: [2], version: nil)
        #expect(try await command.get("/a").data == [2])
        #expect(try await command.get("/n199").data == Array(repeating: 199, count: 512))
        #expect(try await command.children("/").count == 201)
        await command.close()
        await agent.close()
    }

    @Test func anAgentsHandleLetsGoOfItsCachesAndGoesOnWorking() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Each heartbeat empties the writer's cache too: with an hour's timeout, none comes during the test, however
        // slow the machine.
        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options(sessionTimeout: .seconds(3600)))
        let (events, continuation) = NodeEvents.makeStream()
        _ = try await agent.addWatch("/", subtree: true, into: continuation)
        for index in 0..<50 {
            _ = try await agent.create("/n\(index)", data: Array(repeating: UInt8(index), count: 2048), mode: .persistent)
        }
        #expect(try await agent.get("/n7").data == Array(repeating: 7, count: 2048))
        let filled = try await agent.writerCacheBytes()
        #expect(filled > 50 * 2048, "the writer's cache holds what it wrote: \(filled) bytes")

        await agent.releaseCaches()
        let released = try await agent.writerCacheBytes()
        #expect(released < filled / 4, "the writer's cache was emptied: \(filled) bytes before, \(released) after")

        // Reads, writes and the watch go on as before.
        #expect(try await agent.get("/n49").data == Array(repeating: 49, count: 2048))
        #expect(try await agent.children("/").count == 50)
        _ = try await agent.set("/n0", data: [7], version: nil)
        #expect(try await agent.get("/n0").data == [7])
        var seen: [NodeEvent] = []
        for try await event in events {
            seen.append(event)
            if event == NodeEvent(.dataChanged, path: "/n0") { break }
        }
        #expect(seen.filter { $0.kind == .created }.count == 50)
        #expect(seen.last == NodeEvent(.dataChanged, path: "/n0"))
        await agent.close()
    }

    @Test func aHeartbeatLeavesTheWritersCacheEmpty() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // With an hour's timeout, the only heartbeat during the test is the one it calls.
        let agent = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options(sessionTimeout: .seconds(3600)))
        for index in 0..<50 {
            _ = try await agent.create("/n\(index)", data: Array(repeating: UInt8(index), count: 2048), mode: .ephemeral)
        }
        let filled = try await agent.writerCacheBytes()
        #expect(filled > 50 * 2048, "the writer's cache holds what it wrote: \(filled) bytes")

        agent.heartbeat()
        let afterBeat = try await agent.writerCacheBytes()
        #expect(afterBeat < filled / 4, "the heartbeat emptied the writer's cache: \(filled) bytes before, \(afterBeat) after")

        // The session lives on, and writes after it read what they need again.
        #expect(try await agent.children("/").count == 50)
        _ = try await agent.set("/n3", data: [9], version: nil)
        #expect(try await agent.get("/n3").data == [9])
        await agent.close()
    }

    @Test func trimmingTheChangeLogReadsOnlyTheRowsItDeletes() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        // 600 change rows with long paths: about 40 pages of log.
        let stem = "/" + String(repeating: "n", count: 250)
        for index in 0..<600 { _ = try await store.create(stem + "\(index)", data: [], mode: .persistent) }
        let position = try await store.database.read { db in try NodeTable.position(db) }
        let rows = { @Sendable () async throws -> [Int64] in
            try await store.database.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM change ORDER BY id") }
        }
        let before = try await rows()
        #expect(before.count >= 600 && before.last == position)

        // Every row is younger than the cutoff: nothing goes, and the log is not read.
        let read = try await store.writerPagesRead { db in
            try NodeTable.trimChanges(db, before: 0, upTo: position)
        }
        #expect(read < 10, "a trim with nothing to delete read \(read) pages")
        #expect(try await rows() == before)

        // Every row is older: the rows up to the position go, the ones after it stay.
        try await store.database.writeWithoutTransaction { db in
            try NodeTable.trimChanges(db, before: .max, upTo: position - 300)
        }
        #expect(try await rows() == Array(position - 299...position), "the rows after the position stay")
        await store.close()
    }

    @Test func aFolderOthersCanWriteIsRefused() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        chmod(folder, 0o777)
        let error = await #expect(throws: PopError.self) {
            _ = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("can be written by other users") == true)
        #expect(error?.hint?.contains("chmod 700") == true)
        #expect(!FileManager.default.fileExists(atPath: folder + "/store.sqlite"))
    }

    @Test func aReadableFolderOfOursIsMadePrivate() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        chmod(folder, 0o755)
        let store = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        #expect(try mode(folder) == 0o700)
        await store.close()
    }

    @Test func aDatabaseOfAnotherSchemaIsReportedClearly() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        try await store.database.write { db in try db.execute(sql: "UPDATE meta SET value = '99' WHERE key = 'schema'") }
        await store.close()
        let error = await #expect(throws: PopError.self) {
            _ = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        }
        #expect(error?.code == .corruptState)
        #expect(error?.message.contains("schema version 99") == true)
    }

    @Test func aFileThatIsNotADatabaseIsReportedClearly() async throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: folder + "/store.sqlite"))
        let error = await #expect(throws: PopError.self) {
            _ = try await EmbeddedStore.open(folder: folder, options: StoreFixture.options())
        }
        #expect(error?.code == .corruptState)
        #expect(error?.message.contains(folder + "/store.sqlite") == true)
    }

    @Test func theChangeLogIsTrimmedAtHeartbeats() async throws {
        try await withStores(.embedded) { fixture in
            // Heartbeats every two seconds; the session's timeout leaves room for a loaded machine's pauses.
            var options = StoreFixture.options(sessionTimeout: .seconds(6))
            options.changeLogRetention = .zero
            let store = try await EmbeddedStore.open(folder: fixture.folder, options: options)
            for index in 0..<20 { _ = try await store.create("/n\(index)", data: [], mode: .persistent) }
            var remaining: Int?
            // No event says the log was trimmed: look after each heartbeat's worth of time, within a bound.
            let deadline = ContinuousClock.now + .seconds(30)
            repeat {
                try await Task.sleep(for: .milliseconds(500))
                remaining = try await store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM change") }
            } while remaining != 0 && ContinuousClock.now < deadline
            #expect(remaining == 0, "the next heartbeat trims the log")
            // Watches keep working after a trim: positions continue from the sequence.
            let events = try await store.watchSubtree("/")
            _ = try await store.create("/after", data: [], mode: .persistent)
            #expect(try await within(15, "an event after the trim") { try await events.collect(1) } == [NodeEvent(.created, path: "/after")])
            await store.close()
        }
    }
}
