import Foundation
import Synchronization
import Testing
import ZooKeeperTestSupport

@testable import PopState
@testable import ZooKeeperNIO

/// What the ZooKeeper store owns ends with its owner: watches, session subscriptions, and an auth failure reported
/// as one.
@Suite("ZooKeeper store lifetimes")
struct ZooKeeperStoreTests {
    @Test func cancellingAOneShotWatchRemovesItHereAndOnTheServer() async throws {
        try await withStores(.zooKeeper) { fixture in
            let store = try await fixture.open() as! ZooKeeperStore
            let server = try await ZooKeeperServer.shared()
            _ = try await store.create("/w", data: [], mode: .persistent)
            _ = try await store.create("/w/c", data: [], mode: .persistent)

            let (_, first) = try await store.getAndWatch("/w")
            let (_, second) = try await store.existsAndWatch("/w")
            let (_, children) = try await store.childrenAndWatch("/w")
            #expect(await store.client.oneShotWatchCount() == 3)
            #expect(try await Self.serverWatches(store, server).contains("/w"))

            // Another watch of this client still needs the server's data watch on /w.
            first.cancel()
            #expect(first.result != nil, "a cancelled watch is done")
            try await Self.roundTrip(store)
            #expect(await store.client.oneShotWatchCount() == 2)

            second.cancel()
            children.cancel()
            try await Self.roundTrip(store)
            #expect(await store.client.oneShotWatchCount() == 0, "the client forgot the cancelled watches")
            #expect(try await !Self.serverWatches(store, server).contains("/w"), "the server still watches /w for us")

            // A change now reaches no watch, and the session is fine: a new watch fires as usual.
            let (_, later) = try await store.getAndWatch("/w/c")
            _ = try await store.set("/w", data: [1], version: nil)
            _ = try await store.set("/w/c", data: [1], version: nil)
            #expect(try await within(15, "the new watch") { try await later.event() } == NodeEvent(.dataChanged, path: "/w/c"))
            await store.close()
        }
    }

    @Test func aPersistentWatchNobodyFollowsIsRemovedFromTheServer() async throws {
        try await withStores(.zooKeeper) { fixture in
            let store = try await fixture.open() as! ZooKeeperStore
            let server = try await ZooKeeperServer.shared()
            _ = try await store.create("/p", data: [], mode: .persistent)
            func followSubtreeBriefly() async throws {
                let subtree = try await store.watchSubtree("/p")
                #expect(try await Self.serverWatches(store, server).contains("/p"))
                withExtendedLifetime(subtree) {}
            }
            func followNode() async throws {
                let node = try await store.watchNode("/p")
                try await followSubtreeBriefly()
                // The node watch still needs the server's watches on /p (3.8 removes persistent ones only all at once).
                try await Self.roundTrip(store)
                #expect(try await Self.serverWatches(store, server).contains("/p"), "a watch still followed was removed")
                _ = try await store.set("/p", data: [1], version: nil)
                let event = try await within(15, "the node's event") { try await node.first { _ in true } }
                #expect(event == NodeEvent(.dataChanged, path: "/p"))
                withExtendedLifetime(node) {}
            }
            try await followNode()
            // The last follower went: so did the server's watch, and the session works on.
            try await Self.roundTrip(store)
            #expect(try await !Self.serverWatches(store, server).contains("/p"), "the server still watches /p for us")
            let again = try await store.watchSubtree("/p")
            _ = try await store.create("/p/c", data: [], mode: .persistent)
            let event = try await within(15, "a new watch's event") { try await again.first { _ in true } }
            #expect(event == NodeEvent(.created, path: "/p/c"))
            await store.close()
        }
    }

    @Test func aReadLargerThanOneFrameComesBackWholeAndInOrder() async throws {
        try await withStores(.zooKeeper) { fixture in
            let store = try await fixture.open() as! ZooKeeperStore
            _ = try await store.create("/big", data: [], mode: .persistent)
            // 400 nodes of 4 KB: 1.6 MB, more than one frame (jute.maxbuffer, 1 MB) can carry.
            let count = 400
            let value = { (index: Int) in Array(String(format: "%05d", index).utf8) + [UInt8](repeating: 120, count: 4091) }
            for start in stride(from: 0, to: count, by: 100) {
                _ = try await store.multi((start..<start + 100).map { .create("/big/n\($0)", data: value($0)) })
            }
            var operations: [ReadOperation] = (0..<count).map { .get("/big/n\($0)") }
            operations.insert(.children("/big"), at: 200)
            operations.append(.get("/big/missing"))
            let results = try await store.read(operations)
            #expect(results.count == count + 2)
            for (index, result) in results.enumerated() where index != 200 && index < count + 1 {
                let node = index < 200 ? index : index - 1
                #expect(try result.nodeIfExists()?.data == value(node), "result \(index) is node \(node)")
            }
            #expect(try results[200].childrenIfExists()?.count == count)
            #expect(try results[count + 1].nodeIfExists() == nil)
            #expect(try await store.get("/big/n0").data == value(0), "the session works on")
            await store.close()
        }
    }

    @Test func aCancelledWatchWhoseNodeChangedMeanwhileEndsOnce() async throws {
        try await withStores(.zooKeeper) { fixture in
            let store = try await fixture.open() as! ZooKeeperStore
            _ = try await store.create("/r", data: [], mode: .persistent)
            let (_, watch) = try await store.getAndWatch("/r")
            // The change and the removal cross: the server answers the removal with NOWATCHER, which is fine.
            async let change = store.set("/r", data: [1], version: nil)
            watch.cancel()
            _ = try await change
            try await Self.roundTrip(store)
            #expect(await store.client.oneShotWatchCount() == 0)
            #expect(try await store.get("/r").data == [1], "the session works on")
            await store.close()
        }
    }

    @Test func sessionSubscribersCostNothingOnceTheyStopListening() async throws {
        try await withStores(.zooKeeper) { fixture in
            let store = try await fixture.open() as! ZooKeeperStore
            let baseline = store.client.controller.shared.withLockedValue { $0.subscribers.count }
            var streams = (0..<100).map { _ in store.sessionEvents() }
            #expect(store.client.controller.shared.withLockedValue { $0.subscribers.count } == baseline + 100)
            let kept = streams.removeLast()
            streams.removeAll()
            #expect(
                store.client.controller.shared.withLockedValue { $0.subscribers.count } == baseline + 1,
                "a dropped stream's subscription is gone at once")
            await store.close()
            #expect(try await within(15, "the events") { try await kept.collect() } == [.connected, .closed])
        }
    }

    @Test func aRejectedCredentialIsAnAuthFailureNotAClose() async throws {
        try await withStores(.zooKeeper) { fixture in
            let store = try await fixture.open() as! ZooKeeperStore
            let events = store.sessionEvents()
            // The server knows no such scheme, so it rejects the credential and ends the session.
            await #expect(throws: ZooKeeperError.self) { try await store.client.addAuth(scheme: "nosuch", auth: []) }
            #expect(try await within(15, "the events") { try await events.collect() } == [.connected, .authFailed])
            #expect(try await store.sessionEvents().collect() == [.authFailed], "a later subscriber learns it too")
            let refused = await #expect(throws: PopError.self) { _ = try await store.get("/") }
            #expect(refused?.code == .permissionDenied, "\(String(describing: refused))")
            #expect(SessionEvent.authFailed.endingError?.code == .permissionDenied)
            await store.close()
        }
    }

    /// A request answered after everything sent before it: the server has processed those.
    static func roundTrip(_ store: ZooKeeperStore) async throws {
        _ = try await store.exists("/")
    }

    /// The paths (relative to the store's chroot) the server watches for this store's session, from `wchc`.
    static func serverWatches(_ store: ZooKeeperStore, _ server: ZooKeeperServer) async throws -> Set<String> {
        let chroot = store.client.configuration.chroot ?? ""
        let paths = try await zooKeeperWatchedPaths(session: store.sessionID, host: server.host, port: server.clientPort)
        return Set(paths.map { $0.hasPrefix(chroot) ? String($0.dropFirst(chroot.count)) : $0 })
    }
}
