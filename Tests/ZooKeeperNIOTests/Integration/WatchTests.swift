import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

@Suite("Watches against a real server", .timeLimit(.minutes(5)))
struct WatchTests {
    @Test func oneShotWatchesFireExactlyOnce() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            try await withClient { writer in
                let path = "\(root)/w"
                _ = try await client.create(path, data: [0])
                let (_, _, first) = try await client.getData(path, watch: true)
                let (_, _, second) = try await client.getData(path, watch: true)
                let (_, childWatch) = try await { () async throws -> ([String], ZooKeeperWatch) in
                    let (children, _, watch) = try await client.getChildren(path, watch: true)
                    return (children, watch)
                }()
                _ = try await writer.setData(path, data: [1])
                _ = try await writer.setData(path, data: [2])
                #expect(try await first.event == ZooKeeperWatchEvent(type: .nodeDataChanged, path: path))
                #expect(try await second.event == ZooKeeperWatchEvent(type: .nodeDataChanged, path: path))

                // The watch was consumed: a new one sees only the next change.
                let (data, _, third) = try await client.getData(path, watch: true)
                #expect(data == [2])
                _ = try await writer.create("\(path)/child")
                #expect(try await childWatch.event == ZooKeeperWatchEvent(type: .nodeChildrenChanged, path: path))
                try await writer.delete("\(path)/child")
                try await writer.delete(path)
                #expect(try await third.event == ZooKeeperWatchEvent(type: .nodeDeleted, path: path))

                // exists on a missing node watches for its creation.
                let (stat, created) = try await client.exists(path, watch: true)
                #expect(stat == nil)
                _ = try await writer.create(path)
                #expect(try await created.event == ZooKeeperWatchEvent(type: .nodeCreated, path: path))

                // Without watch: true there is nothing to await.
                let (_, _, none) = try await client.getData(path, watch: false)
                await #expect(throws: ZooKeeperError.self) { try await none.event }
            }
        }
    }

    @Test func persistentWatchesDeliverEveryEvent() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            try await withClient { writer in
                let path = "\(root)/p"
                _ = try await writer.create(path)
                let events = try await client.addWatch(path, mode: .persistent)
                let recursive = try await client.addWatch(root, mode: .persistentRecursive)
                let count = 300
                for index in 0..<count { _ = try await writer.setData(path, data: Array("\(index)".utf8)) }
                _ = try await writer.create("\(path)/child")
                try await client.removeWatches(path, type: .persistent)

                var received: [ZooKeeperWatchEvent] = []
                for try await event in events { received.append(event) }
                #expect(received.count == count + 2)
                #expect(received.prefix(count).allSatisfy { $0 == ZooKeeperWatchEvent(type: .nodeDataChanged, path: path) })
                #expect(received[count] == ZooKeeperWatchEvent(type: .nodeChildrenChanged, path: path))
                #expect(received[count + 1] == ZooKeeperWatchEvent(type: .persistentWatchRemoved, path: path))

                // The recursive watch saw the data changes and the grandchild's creation, not children changes.
                var recursiveEvents: [ZooKeeperWatchEvent] = []
                for try await event in recursive {
                    recursiveEvents.append(event)
                    if recursiveEvents.count == count + 1 { break }
                }
                #expect(recursiveEvents.last == ZooKeeperWatchEvent(type: .nodeCreated, path: "\(path)/child"))
                #expect(recursiveEvents.filter { $0.type == .nodeDataChanged }.count == count)
            }
        }
    }

    @Test func watchesCanShareOneSinkAndBeDetachedOneByOne() async throws {
        let root = try await TestServer.uniqueRoot()
        let (events, continuation) = ZooKeeperWatchStream.makeStream()
        let sink = ZooKeeperWatchSink(
            deliver: { continuation.yield($0) }, end: { continuation.finish(throwing: $0) })
        try await withClient { writer in
            let client = try await TestServer.client()
            let a = try await client.addWatch("\(root)/a", mode: .persistent, sink: sink)
            _ = try await client.addWatch("\(root)/b", mode: .persistentRecursive, sink: sink)
            _ = try await writer.create("\(root)/a")
            _ = try await writer.create("\(root)/b")
            _ = try await writer.create("\(root)/b/c")
            client.detachWatch(a)
            // A round trip on the same connection: the detach has been applied before the next writes' events.
            _ = try await client.exists(root)
            _ = try await writer.setData("\(root)/a", data: [1])
            _ = try await writer.setData("\(root)/b", data: [1])
            // A failed add reports its error and leaves the shared sink alone.
            await #expect(throws: ZooKeeperError.self) {
                try await client.addWatch("not-absolute", mode: .persistent, sink: sink)
            }
            await client.close()

            #expect(
                await Self.eventsUntilTheSessionsEnd(events) == [
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/a"),
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/b"),
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/b/c"),
                    ZooKeeperWatchEvent(type: .nodeDataChanged, path: "\(root)/b"),
                ])
        }
    }

    @Test func severalWatchesAreSetInOneRequestPerBatchOfPaths() async throws {
        let root = try await TestServer.uniqueRoot()
        let server = try await TestServer.shared()
        let (events, continuation) = ZooKeeperWatchStream.makeStream()
        let sink = ZooKeeperWatchSink(deliver: { continuation.yield($0) }, end: { continuation.finish(throwing: $0) })
        let names = (0..<12).map { "n\($0)" }
        try await withClient { writer in
            // The longest session the test servers grant: the client pings after 40 s without sending, so no ping
            // falls between the two counts even when a loaded machine makes the first count take 20 s (it did).
            let client = try await TestServer.client(sessionTimeout: .seconds(120))
            let before = try await Self.requestsReceived(from: client, server)
            // Each path is 33-34 bytes with its length: 120 bytes hold three, so the twelve take four requests.
            let ids = try await client.addWatches(
                names.map { (path: "\(root)/\($0)", mode: $0 == "n0" ? .persistentRecursive : .persistent) },
                sink: sink, maxPathBytes: root.utf8.count * 3 + 30)
            let after = try await Self.requestsReceived(from: client, server)
            #expect(ids.count == 12 && Set(ids).count == 12)
            // The four SetWatches2 requests, and not the count's own probe (`cons` is no request).
            #expect(after - before == 4)
            // A list with a bad path sets none of its watches.
            await #expect(throws: ZooKeeperError.self) {
                try await client.addWatches([("\(root)/other", .persistent), ("not-absolute", .persistent)], sink: sink)
            }
            let watched = try await zooKeeperWatchedPaths(session: client.sessionID, host: server.host, port: server.clientPort)
            #expect(watched == Set(names.map { "\(root)/\($0)" }))

            _ = try await writer.create("\(root)/n0")
            _ = try await writer.create("\(root)/n0/child")
            _ = try await writer.create("\(root)/n5")
            client.detachWatch(ids[5])
            _ = try await client.exists(root)
            _ = try await writer.setData("\(root)/n5", data: [1])
            _ = try await writer.create("\(root)/n11")
            await client.close()

            #expect(
                await Self.eventsUntilTheSessionsEnd(events) == [
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/n0"),
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/n0/child"),
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/n5"),
                    ZooKeeperWatchEvent(type: .nodeCreated, path: "\(root)/n11"),
                ])
        }
    }

    /// The requests the server has received on `client`'s connection, from `cons`.
    static func requestsReceived(from client: ZooKeeperClient, _ server: ZooKeeperServer) async throws -> Int {
        let answer = try await zooKeeperFourLetterWord("cons", host: server.host, port: server.clientPort, timeout: .seconds(30))
        let session = "sid=0x" + String(client.sessionID, radix: 16) + ","
        guard let line = answer.split(separator: "\n").first(where: { $0.contains(session) }),
            let field = line.split(separator: ",").first(where: { $0.hasPrefix("recved=") }),
            let count = Int(field.dropFirst("recved=".count))
        else { throw ZooKeeperTestSupportError("no connection of session \(session) in cons: \(answer)") }
        return count
    }

    /// Every event of a shared sink's stream, which the session's end must finish with an error.
    static func eventsUntilTheSessionsEnd(_ events: ZooKeeperWatchStream) async -> [ZooKeeperWatchEvent] {
        var received: [ZooKeeperWatchEvent] = []
        do {
            for try await event in events { received.append(event) }
            Issue.record("the sink must end with the session's error")
        } catch {}
        return received
    }

    @Test func removeWatchesCompletesOneShotWatches() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            let (_, _, watch) = try await client.getData(root, watch: true)
            try await client.removeWatches(root, type: .data)
            #expect(try await watch.event == ZooKeeperWatchEvent(type: .dataWatchRemoved, path: root))
            do {
                try await client.removeWatches(root, type: .children)
                Issue.record("removing a watch that does not exist must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .noWatcher)
            }
        }
    }
}
