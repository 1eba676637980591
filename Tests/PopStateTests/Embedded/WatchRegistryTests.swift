import Testing
@testable import PopState

/// The registry's ordering rules, driven directly: a watch registered before its read and activated with the read's
/// log position sees exactly the changes after that position.
@Suite struct WatchRegistryTests {
    func change(_ id: Int64, _ kind: NodeEvent.Kind, _ path: String) -> ChangeRecord {
        ChangeRecord(id: id, kind: kind, path: path)
    }

    @Test func changesSeenWhileTheReadRunsAreFilteredByItsPosition() throws {
        let registry = WatchRegistry(position: 10)
        let (early, earlyWatch) = try registry.registerOneShot(.data, path: "/a")
        let (late, lateWatch) = try registry.registerOneShot(.data, path: "/a")
        // The dispatcher reads change 11 while both reads run.
        registry.dispatch([change(11, .dataChanged, "/a")])
        // One read's snapshot already included change 11; the other's did not.
        registry.activate(late, since: 11)
        registry.activate(early, since: 10)
        #expect(earlyWatch.result == .success(NodeEvent(.dataChanged, path: "/a")))
        #expect(lateWatch.result == nil)
        registry.dispatch([change(12, .deleted, "/a")])
        #expect(lateWatch.result == .success(NodeEvent(.deleted, path: "/a")))
        #expect(registry.count == 0)
    }

    @Test func aSnapshotAheadOfTheDispatcherIgnoresOlderRows() throws {
        let registry = WatchRegistry(position: 10)
        let (token, watch) = try registry.registerOneShot(.data, path: "/a")
        registry.activate(token, since: 12)
        registry.dispatch([change(11, .dataChanged, "/a"), change(12, .dataChanged, "/a")])
        #expect(watch.result == nil)
        registry.dispatch([change(13, .dataChanged, "/a")])
        #expect(watch.result != nil)
    }

    @Test func childWatchesMatchChildrenOnly() throws {
        let registry = WatchRegistry(position: 0)
        let (token, watch) = try registry.registerOneShot(.children, path: "/p")
        registry.activate(token, since: 0)
        registry.dispatch([change(1, .dataChanged, "/p"), change(2, .created, "/p/c/grandchild"), change(3, .dataChanged, "/p/c")])
        #expect(watch.result == nil)
        registry.dispatch([change(4, .deleted, "/p/c")])
        #expect(watch.result == .success(NodeEvent(.childrenChanged, path: "/p")))
    }

    @Test func subtreeWatchesDeliverPendingChangesAfterTheirPosition() async throws {
        let registry = WatchRegistry(position: 0)
        let (events, continuation) = NodeEvents.makeStream()
        let token = try registry.registerSubtree(root: "/s", recursive: true, sharing: continuation)
        registry.dispatch([change(1, .created, "/s"), change(2, .created, "/s/a"), change(3, .created, "/sx")])
        registry.activate(token, since: 1)
        registry.dispatch([change(4, .deleted, "/s/a")])
        registry.end(PopError(.storeUnreachable, "closed"))
        var received: [NodeEvent] = []
        await #expect(throws: PopError.self) {
            for try await event in events { received.append(event) }
        }
        #expect(received == [NodeEvent(.created, path: "/s/a"), NodeEvent(.deleted, path: "/s/a")])
        #expect(throws: PopError.self) { try registry.registerOneShot(.data, path: "/s") }
    }

    @Test func aChangeReachesTheWatchesOnItsPathAndAboveItOnly() async throws {
        let registry = WatchRegistry(position: 0)
        let (events, continuation) = NodeEvents.makeStream()
        let everything = try registry.registerSubtree(root: "/", recursive: true, sharing: continuation)
        let node = try registry.registerSubtree(root: "/s", recursive: false, sharing: continuation)
        let discarded = try registry.registerSubtree(root: "/s", recursive: true, sharing: continuation)
        let (data, dataWatch) = try registry.registerOneShot(.data, path: "/s/a")
        for token in [everything, node, discarded, data] { registry.activate(token, since: 0) }
        registry.discard(discarded)
        #expect(registry.count == 3)
        // "/sx" is not below "/s"; "/s/a/b" is below "/s" but not one of its children.
        registry.dispatch([change(1, .created, "/sx"), change(2, .created, "/s/a/b"), change(3, .dataChanged, "/s/a")])
        registry.dispatch([change(4, .created, "/s/c")])
        registry.end(PopError(.storeUnreachable, "closed"))
        var received: [NodeEvent] = []
        await #expect(throws: PopError.self) {
            for try await event in events { received.append(event) }
        }
        #expect(
            received == [
                NodeEvent(.created, path: "/sx"), NodeEvent(.created, path: "/s/a/b"), NodeEvent(.dataChanged, path: "/s/a"),
                NodeEvent(.created, path: "/s/c"), NodeEvent(.childrenChanged, path: "/s"),
            ] || received == [
                NodeEvent(.created, path: "/sx"), NodeEvent(.created, path: "/s/a/b"), NodeEvent(.dataChanged, path: "/s/a"),
                NodeEvent(.childrenChanged, path: "/s"), NodeEvent(.created, path: "/s/c"),
            ], "\(received)")
        #expect(dataWatch.result == .success(NodeEvent(.dataChanged, path: "/s/a")))
    }

    @Test func aPathAndTheNodesAboveIt() {
        #expect(NodePath.selfAndAncestors("/") == ["/"])
        #expect(NodePath.selfAndAncestors("/a") == ["/a", "/"])
        #expect(NodePath.selfAndAncestors("/pop/services/web") == ["/pop/services/web", "/pop/services", "/pop", "/"])
    }
}
