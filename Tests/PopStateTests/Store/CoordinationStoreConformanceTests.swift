import Foundation
import Testing
@testable import PopState

/// The semantics every ``CoordinationStore`` must have, written once against the protocol and run on every store.
@Suite(.timeLimit(.minutes(5)))
struct CoordinationStoreConformanceTests {
    @Test(arguments: StoreKind.allCases)
    func createGetSetDeleteWithVersionsAndStats(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            #expect(try await store.create("/a", data: bytes("one"), mode: .persistent) == "/a")
            var node = try await store.get("/a")
            #expect(node.data == bytes("one"))
            #expect(node.stat.version == 0)
            #expect(node.stat.ephemeralOwner == 0)
            #expect(node.stat.dataLength == 3)

            let stat = try await store.set("/a", data: bytes("two"), version: nil)
            #expect(stat.version == 1)
            node = try await store.get("/a")
            #expect(node.data == bytes("two"))
            #expect(node.stat.version == 1)

            _ = try await store.create("/a/c", data: [], mode: .persistent)
            _ = try await store.create("/a/b", data: [], mode: .persistent)
            #expect(try await store.children("/a") == ["b", "c"])
            let parent = try #require(try await store.exists("/a"))
            #expect(parent.numChildren == 2)
            #expect(parent.childrenVersion == 2)
            #expect(parent.version == 1, "creating children leaves the data version alone")

            try await store.delete("/a/b", version: 0)
            #expect(try await store.exists("/a/b") == nil)
            #expect(try await store.exists("/a")?.childrenVersion == 3)
            await store.close()
        }
    }

    /// Data is bytes, not text: NUL and bytes that are not UTF-8 come back as written, empty data as empty; names
    /// outside ASCII are listed whole, in the store's order.
    @Test(arguments: StoreKind.allCases)
    func bytesAndNamesComeBackExactly(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let binary: [UInt8] = [0, 255, 0, 0xC3, 0x28, 10, 0]
            _ = try await store.create("/bytes", data: binary, mode: .persistent)
            _ = try await store.create("/bytes/empty", data: [], mode: .persistent)
            _ = try await store.create("/bytes/b-é", data: [0], mode: .persistent)
            _ = try await store.create("/bytes/a-ß", data: [], mode: .persistent)
            #expect(try await store.get("/bytes").data == binary)
            #expect(try await store.get("/bytes").stat.dataLength == Int32(binary.count))
            #expect(try await store.get("/bytes/empty").data == [])
            #expect(try await store.get("/bytes/b-é").data == [0])
            #expect(try await store.children("/bytes") == ["a-ß", "b-é", "empty"])
            let read = try await store.read([.get("/bytes"), .children("/bytes"), .get("/bytes/missing")])
            #expect(try read[0].node().data == binary)
            #expect(try read[1].children() == ["a-ß", "b-é", "empty"])
            #expect(try read[2].nodeIfExists() == nil)
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func compareAndSetConflicts(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let first = try await fixture.open()
            let second = try await fixture.open()
            _ = try await first.create("/cas", data: bytes("0"), mode: .persistent)
            let seen = try await first.get("/cas").stat.version
            _ = try await second.set("/cas", data: bytes("second"), version: seen)
            let error = await #expect(throws: PopError.self) {
                try await first.set("/cas", data: bytes("first"), version: seen)
            }
            #expect(error?.code == .conflict)
            #expect(error?.path == "/cas")
            #expect(try await first.get("/cas").data == bytes("second"))

            let deleteError = await #expect(throws: PopError.self) { try await first.delete("/cas", version: seen) }
            #expect(deleteError?.code == .conflict)
            try await first.delete("/cas", version: seen + 1)
            #expect(try await second.exists("/cas") == nil)
            await first.close()
            await second.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func createAndDeleteFollowZooKeeperRules(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let missingParent = await #expect(throws: PopError.self) {
                try await store.create("/none/child", data: [], mode: .persistent)
            }
            #expect(missingParent?.code == .notFound)
            #expect(missingParent?.path == "/none")

            _ = try await store.create("/p", data: [], mode: .persistent)
            _ = try await store.create("/p/q", data: [], mode: .persistent)
            let exists = await #expect(throws: PopError.self) { try await store.create("/p", data: [], mode: .persistent) }
            #expect(exists?.code == .conflict)

            let notEmpty = await #expect(throws: PopError.self) { try await store.delete("/p", version: nil) }
            #expect(notEmpty?.code == .conflict)
            #expect(notEmpty?.path == "/p")

            _ = try await store.create("/e", data: [], mode: .ephemeral)
            let ephemeralParent = await #expect(throws: PopError.self) {
                try await store.create("/e/x", data: [], mode: .persistent)
            }
            #expect(ephemeralParent != nil)

            let missing = await #expect(throws: PopError.self) { try await store.get("/nothing") }
            #expect(missing?.code == .notFound)
            #expect(missing?.path == "/nothing")
            #expect(missing?.message.contains("/nothing") == true)

            for bad in ["relative", "/trailing/", "/a//b", "/a/../b", "/a/\u{1}"] {
                let invalid = await #expect(throws: PopError.self) { try await store.get(bad) }
                #expect(invalid?.code == .invalidInput, "path \(bad)")
            }
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sequentialNamesAreUniqueUnderConcurrentCreators(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let setup = try await fixture.open()
            _ = try await setup.create("/seq", data: [], mode: .persistent)
            var handles: [any CoordinationStore] = []
            for _ in 0..<3 { handles.append(try await fixture.open()) }
            let created = try await withThrowingTaskGroup(of: [String].self) { group in
                for handle in handles {
                    for _ in 0..<4 {
                        group.addTask {
                            var paths: [String] = []
                            for _ in 0..<10 {
                                paths.append(try await handle.create("/seq/n-", data: [], mode: .persistentSequential))
                            }
                            return paths
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(created.count == 120)
            #expect(Set(created).count == 120)
            for path in created {
                let suffix = path.dropFirst("/seq/n-".count)
                #expect(suffix.count == 10 && suffix.allSatisfy(\.isNumber), "\(path)")
            }
            #expect(try await setup.children("/seq").count == 120)
            for handle in handles + [setup] { await handle.close() }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func multiIsAllOrNothing(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            _ = try await store.create("/m", data: bytes("v0"), mode: .persistent)
            let error = await #expect(throws: PopError.self) {
                try await store.multi([
                    .create("/m/a", data: []),
                    .set("/m", data: bytes("v1"), version: 0),
                    .create("/m/b", data: []),
                    .check("/m", version: 0),  // Fails: the set above bumped it to 1.
                ])
            }
            #expect(error?.code == .conflict)
            #expect(error?.operationIndex == 3)
            #expect(try await store.exists("/m/a") == nil)
            #expect(try await store.exists("/m/b") == nil)
            #expect(try await store.get("/m").data == bytes("v0"))
            #expect(try await store.get("/m").stat.version == 0)

            let results = try await store.multi([
                .create("/m/a", data: []),
                .create("/m/s-", data: [], mode: .persistentSequential),
                .set("/m", data: bytes("v1"), version: 0),
                .check("/m", version: 1),
                .delete("/m/a"),
            ])
            #expect(results.count == 5)
            #expect(results[0] == .created("/m/a"))
            guard case .created(let sequential) = results[1] else { Issue.record("expected created"); return }
            #expect(sequential.hasPrefix("/m/s-") && sequential.count == "/m/s-".count + 10)
            guard case .set(let stat) = results[2] else { Issue.record("expected set"); return }
            #expect(stat.version == 1)
            #expect(results[3] == .checked)
            #expect(results[4] == .deleted)
            #expect(try await store.children("/m") == [NodePath.name(sequential)])
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func batchedReadsReportEachResult(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            _ = try await store.create("/r", data: bytes("x"), mode: .persistent)
            _ = try await store.create("/r/k", data: [], mode: .persistent)
            let results = try await store.read([.get("/r"), .children("/r"), .get("/missing"), .children("/missing")])
            #expect(try results[0].node().data == bytes("x"))
            #expect(try results[1].children() == ["k"])
            #expect(try results[2].nodeIfExists() == nil)
            #expect(try results[3].childrenIfExists() == nil)
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func ephemeralsVanishWhenTheirSessionCloses(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let observer = try await fixture.open()
            let owner = try await fixture.open()
            _ = try await observer.create("/machines", data: [], mode: .persistent)
            let path = try await owner.create("/machines/m-", data: bytes("me"), mode: .ephemeralSequential)
            let stat = try #require(try await observer.exists(path))
            #expect(stat.ephemeralOwner == owner.sessionID)
            #expect(owner.sessionID != observer.sessionID)

            let (_, watch) = try await observer.getAndWatch(path)
            let (_, childWatch) = try await observer.childrenAndWatch("/machines")
            await owner.close()
            let event = try await within(15, "the ephemeral's delete") { try await watch.event() }
            #expect(event == NodeEvent(.deleted, path: path))
            #expect(try await within(15, "the child watch") { try await childWatch.event() }.kind == .childrenChanged)
            #expect(try await observer.exists(path) == nil)

            let closed = await #expect(throws: PopError.self) { try await owner.get("/machines") }
            #expect(closed?.code == .storeUnreachable)
            await observer.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func ephemeralsVanishWhenTheirSessionExpires(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            // Only the owner's session is short; the observer's must survive a loaded machine's pauses.
            let observer = try await fixture.open(sessionTimeout: .seconds(30))
            // Long enough that the owner's set-up requests outlast a loaded machine's pauses (a ZooKeeper client
            // gives up on a connection silent for two thirds of its session).
            let timeout = Duration.seconds(8)
            let owner = try await fixture.open(sessionTimeout: timeout)
            let path = try await owner.create("/agent", data: [], mode: .ephemeral)
            let (_, watch) = try await observer.existsAndWatch(path)
            let ownerEvents = owner.sessionEvents()

            // Heartbeats continue as long as the owner lives: the node outlives its timeout. Each read the owner
            // answers says its session is alive then; reads spread over more than the timeout show it outlived it.
            let began = ContinuousClock.now
            while ContinuousClock.now - began < timeout + .seconds(1) {
                #expect(try await owner.exists(path) != nil)
                try await Task.sleep(for: timeout / 4)
            }
            #expect(try await observer.exists(path) != nil)
            #expect(watch.result == nil)

            try await fixture.stopHeartbeats(owner)
            let event = try await within(60, "the expired ephemeral's delete") { try await watch.event() }
            #expect(event == NodeEvent(.deleted, path: path))
            fixture.healPartition(owner)

            let expired = await #expect(throws: PopError.self) {
                try await owner.create("/other", data: [], mode: .persistent)
            }
            #expect(expired?.code == .storeUnreachable)
            // A ZooKeeper client may report `disconnected` before it learns of the expiry on reconnecting.
            let events = try await within(15, "the expired event") {
                try await ownerEvents.collect(3).filter { $0 != .disconnected }
            }
            #expect(events == [.connected, .expired])
            await owner.close()
            await observer.close()
        }
    }

    /// Writes `path` with `writer` and waits until `watcher` sees it: a watcher's events come in the order of the
    /// changes, so a watch that has not fired by then was not fired by any earlier change.
    static func sentinel(
        watcher: any CoordinationStore, writer: any CoordinationStore, _ path: String
    ) async throws {
        let (_, watch) = try await watcher.existsAndWatch(path)
        _ = try await writer.create(path, data: [], mode: .persistent)
        #expect(try await within(60, "the sentinel \(path)") { try await watch.event() } == NodeEvent(.created, path: path))
    }

    @Test(arguments: StoreKind.allCases)
    func oneShotWatchesFireOncePerChange(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let watcher = try await fixture.open()
            let writer = try await fixture.open()
            _ = try await writer.create("/w", data: bytes("0"), mode: .persistent)

            let (node, watch) = try await watcher.getAndWatch("/w")
            #expect(node.data == bytes("0"))
            _ = try await writer.set("/w", data: bytes("1"), version: nil)
            _ = try await writer.set("/w", data: bytes("2"), version: nil)
            let event = try await within(15, "the data watch") { try await watch.event() }
            #expect(event == NodeEvent(.dataChanged, path: "/w"))
            // The watch fired once; awaiting it again gives the same single event.
            #expect(try await watch.event() == event)

            // A new read leaves a new watch, which fires on the next change only.
            let (again, second) = try await watcher.getAndWatch("/w")
            #expect(again.data == bytes("2"))
            try await Self.sentinel(watcher: watcher, writer: writer, "/sentinel-1")
            #expect(second.result == nil, "no change happened since the read")
            try await writer.delete("/w", version: nil)
            #expect(try await within(15, "the delete") { try await second.event() } == NodeEvent(.deleted, path: "/w"))

            // An exists watch on a missing node fires when it is created.
            let (missing, creation) = try await watcher.existsAndWatch("/w")
            #expect(missing == nil)
            _ = try await writer.create("/w", data: [], mode: .persistent)
            #expect(try await within(15, "the create") { try await creation.event() } == NodeEvent(.created, path: "/w"))

            // A child watch ignores data changes of the node and its children, and fires on a child create.
            let (children, childWatch) = try await watcher.childrenAndWatch("/w")
            #expect(children.isEmpty)
            _ = try await writer.set("/w", data: bytes("data"), version: nil)
            try await Self.sentinel(watcher: watcher, writer: writer, "/sentinel-2")
            #expect(childWatch.result == nil, "a data change fired a child watch")
            _ = try await writer.create("/w/child", data: [], mode: .persistent)
            #expect(
                try await within(15, "the child create") { try await childWatch.event() }
                    == NodeEvent(.childrenChanged, path: "/w"))
            await watcher.close()
            await writer.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func watchesEndWhenTheSessionCloses(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            _ = try await store.create("/x", data: [], mode: .persistent)
            let (_, watch) = try await store.getAndWatch("/x")
            let events = try await store.watchSubtree("/")
            await store.close()
            await #expect(throws: PopError.self) { try await watch.event() }
            await #expect(throws: PopError.self) { for try await _ in events {} }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func subtreeWatchLosesNothingUnderABurstOfWrites(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let watcher = try await fixture.open()
            let writers = [try await fixture.open(), try await fixture.open()]
            _ = try await writers[0].create("/burst", data: [], mode: .persistent)
            _ = try await writers[0].create("/elsewhere", data: [], mode: .persistent)
            let events = try await watcher.watchSubtree("/burst")

            let tasksPerWriter = 4
            let nodesPerTask = 25
            let setsPerNode = 3
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (w, writer) in writers.enumerated() {
                    for t in 0..<tasksPerWriter {
                        group.addTask {
                            for n in 0..<nodesPerTask {
                                let path = "/burst/w\(w)-t\(t)-n\(n)"
                                _ = try await writer.create(path, data: [], mode: .persistent)
                                for s in 0..<setsPerNode {
                                    _ = try await writer.set(path, data: bytes("\(s)"), version: Int32(s))
                                }
                                _ = try await writer.set("/elsewhere", data: [], version: nil)
                                try await writer.delete(path, version: Int32(setsPerNode))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let nodes = writers.count * tasksPerWriter * nodesPerTask
            let expected = nodes * (2 + setsPerNode)
            let received = try await within(30, "\(expected) events") {
                var received: [NodeEvent] = []
                for try await event in events {
                    received.append(event)
                    if received.count == expected { break }
                }
                return received
            }
            #expect(received.count == expected)
            var perPath: [String: [NodeEvent.Kind]] = [:]
            for event in received { perPath[event.path, default: []].append(event.kind) }
            #expect(perPath.count == nodes)
            let lifecycle: [NodeEvent.Kind] = [.created] + Array(repeating: .dataChanged, count: setsPerNode) + [.deleted]
            for (path, kinds) in perPath {
                #expect(kinds == lifecycle, "\(path)")
            }
            await watcher.close()
            for writer in writers { await writer.close() }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func nodeWatchSeesTheNodeAndItsChildrenListButNothingDeeper(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let watcher = try await fixture.open()
            let writer = try await fixture.open()
            // The node does not exist yet: the watch still follows it.
            let events = try await watcher.watchNode("/n")
            _ = try await writer.create("/n", data: [], mode: .persistent)
            _ = try await writer.set("/n", data: bytes("1"), version: nil)
            _ = try await writer.create("/n/child", data: [], mode: .persistent)
            _ = try await writer.set("/n/child", data: bytes("2"), version: nil)
            _ = try await writer.create("/n/child/grandchild", data: [], mode: .persistent)
            try await writer.delete("/n/child/grandchild", version: nil)
            _ = try await writer.create("/sibling", data: [], mode: .persistent)
            try await writer.delete("/n/child", version: nil)
            try await writer.delete("/n", version: nil)
            let expected: [NodeEvent] = [
                NodeEvent(.created, path: "/n"), NodeEvent(.dataChanged, path: "/n"),
                NodeEvent(.childrenChanged, path: "/n"), NodeEvent(.childrenChanged, path: "/n"),
                NodeEvent(.deleted, path: "/n"),
            ]
            let received = try await within(15, "\(expected.count) events") {
                var received: [NodeEvent] = []
                for try await event in events {
                    received.append(event)
                    if received.count == expected.count { break }
                }
                return received
            }
            #expect(received == expected)
            // A watch on one path stays quiet about another, and ends when its session ends.
            let quiet = try await watcher.watchNode("/quiet")
            _ = try await writer.create("/loud", data: [], mode: .persistent)
            await watcher.close()
            var after: [NodeEvent] = []
            await #expect(throws: PopError.self) { for try await event in quiet { after.append(event) } }
            #expect(after.isEmpty)
            await writer.close()
        }
    }

    /// The watches are set one by one, or together (`addWatches`, one request on ZooKeeper).
    @Test(arguments: StoreKind.allCases, [false, true])
    func watchesSharingOneStreamCanBeCancelledOneByOne(_ kind: StoreKind, together: Bool) async throws {
        try await withStores(kind) { fixture in
            let watcher = try await fixture.open()
            let writer = try await fixture.open()
            let (events, continuation) = NodeEvents.makeStream()
            let a: WatchHandle
            if together {
                let handles = try await watcher.addWatches([("/a", false), ("/b", true)], into: continuation)
                #expect(handles.count == 2)
                a = handles[0]
            } else {
                a = try await watcher.addWatch("/a", subtree: false, into: continuation)
                _ = try await watcher.addWatch("/b", subtree: true, into: continuation)
            }
            _ = try await writer.create("/a", data: [], mode: .persistent)
            _ = try await writer.create("/b", data: [], mode: .persistent)
            _ = try await writer.create("/b/c", data: [], mode: .persistent)
            var received: [NodeEvent] = []
            for try await event in events {
                received.append(event)
                if received.count == 3 { break }
            }
            #expect(Set(received) == [NodeEvent(.created, path: "/a"), NodeEvent(.created, path: "/b"), NodeEvent(.created, path: "/b/c")])
            a.cancel()
            _ = try await writer.set("/a", data: bytes("1"), version: nil)
            _ = try await writer.set("/b/c", data: bytes("1"), version: nil)
            var next: NodeEvent?
            for try await event in events {
                next = event
                break
            }
            #expect(next == NodeEvent(.dataChanged, path: "/b/c"), "the cancelled watch of /a delivers nothing")
            await watcher.close()
            await #expect(throws: PopError.self) { for try await _ in events {} }
            await writer.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sessionEventsStartWithTheCurrentStateAndEndWithClose(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let events = store.sessionEvents()
            await store.close()
            #expect(try await within(15, "session events") { try await events.collect() } == [.connected, .closed])
            #expect(try await store.sessionEvents().collect() == [.closed])
        }
    }
}
