import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

@Suite("Sessions, auth and chroot against a real server", .timeLimit(.minutes(5)))
struct SessionTests {
    @Test func ephemeralsVanishWhenTheSessionCloses() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { observer in
            let owner = try await TestServer.client()
            let (path, _) = try await owner.create("\(root)/eph", mode: .ephemeral)
            let (stat, watch) = try await observer.exists(path, watch: true)
            #expect(stat?.ephemeralOwner == owner.sessionID)
            let events = owner.sessionEvents
            await owner.close()
            #expect(try await watch.event == ZooKeeperWatchEvent(type: .nodeDeleted, path: path))
            #expect(try await observer.exists(path) == nil)
            var received: [ZooKeeperSessionEvent] = []
            for await event in events { received.append(event) }
            #expect(received.count == 2)
            #expect(received.last == .closed)
            guard case .connected(owner.sessionID, _, _) = received.first else {
                Issue.record("a new subscriber first learns the current state")
                return
            }
            do {
                _ = try await owner.getData(root)
                Issue.record("a closed client must refuse requests")
            } catch let error as ZooKeeperError {
                #expect(error.code == .clientClosed)
            }
        }
    }

    /// A close that does not wait for the server's answer still closes the session at once: the ephemeral node goes
    /// long before the session (120 s) could have expired.
    @Test func aCloseWithoutAnswerStillEndsTheSessionAtOnce() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { observer in
            let owner = try await TestServer.client(sessionTimeout: .seconds(120))
            let (path, _) = try await owner.create("\(root)/eph", mode: .ephemeral)
            let (stat, watch) = try await observer.exists(path, watch: true)
            #expect(stat?.ephemeralOwner == owner.sessionID)
            let events = owner.sessionEvents
            await owner.closeWithoutAnswer()
            var received: [ZooKeeperSessionEvent] = []
            for await event in events { received.append(event) }
            #expect(received.last == .closed)
            let event = try await withTimeout(.seconds(30), "the ephemeral node's deletion") { try await watch.event }
            #expect(event == ZooKeeperWatchEvent(type: .nodeDeleted, path: path))
            do {
                _ = try await owner.getData(root)
                Issue.record("a closed client must refuse requests")
            } catch let error as ZooKeeperError {
                #expect(error.code == .clientClosed)
            }
        }
    }

    @Test func reconnectKeepsTheSessionAndRestoresWatches() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withProxy { proxy in
        // What is tested is the reconnect, not a race with expiry: the session outlives any pause of a loaded machine
        // (the test servers grant up to two minutes).
        let client = try await ZooKeeperClient.connect(try TestServer.configuration(proxy.connectString, sessionTimeout: .seconds(120)))
        #expect(client.negotiatedSessionTimeout == .seconds(120))
        try await withClient { writer in
            let sessionID = client.sessionID
            let (ephemeral, _) = try await client.create("\(root)/eph", mode: .ephemeral)
            let (_, _, dataWatch) = try await client.getData(root, watch: true)
            let persistent = try await client.addWatch("\(root)/p", mode: .persistent)
            var events = client.sessionEvents.makeAsyncIterator()

            // Cut the connection and keep the proxy refusing while changes happen.
            proxy.setMode(.refusing)
            guard case .connected = await events.next() else {
                Issue.record("a new subscriber first learns the current state")
                return
            }
            #expect(await events.next() == .disconnected(server: proxy.connectString))
            _ = try await writer.setData(root, data: [1])
            _ = try await writer.create("\(root)/p")
            proxy.setMode(.forwarding)

            let reconnected = await events.next()
            #expect(reconnected == .reconnected(sessionID: sessionID, server: proxy.connectString))
            #expect(client.sessionID == sessionID)
            // A one-shot watch sees the change made while disconnected: SetWatches carried the last zxid seen.
            #expect(try await dataWatch.event == ZooKeeperWatchEvent(type: .nodeDataChanged, path: root))
            #expect(try await writer.exists(ephemeral)?.ephemeralOwner == sessionID)
            // The persistent watch was restored too. (ZooKeeper replays no missed events for persistent watches;
            // their owners re-read after `.reconnected`.)
            _ = try await writer.setData("\(root)/p", data: [2])
            var persistentEvents = persistent.makeAsyncIterator()
            #expect(try await persistentEvents.next() == ZooKeeperWatchEvent(type: .nodeDataChanged, path: "\(root)/p"))
        }
        await client.close()
        }
    }

    @Test func expiryIsReportedAndNeverSilentlyReplaced() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withProxy { proxy in
        // A timeout with room for a loaded machine's pauses before the partition starts; the partition then lasts
        // until the server has expired the session, however long that takes.
        let client = try await ZooKeeperClient.connect(try TestServer.configuration(proxy.connectString, sessionTimeout: .seconds(6)))
        let sessionID = client.sessionID
        let (ephemeral, _) = try await client.create("\(root)/eph", mode: .ephemeral)
        let (_, _, watch) = try await client.getData(root, watch: true)
        let events = client.sessionEvents

        try await withClient { observer in
            let (_, deleted) = try await observer.exists(ephemeral, watch: true)
            // A partition: the client hears nothing and reaches nobody, so the server expires the session.
            proxy.setMode(.blackhole)
            #expect(try await withTimeout(.seconds(50), "the ephemeral's deletion") { try await deleted.event }.type == .nodeDeleted)
            proxy.setMode(.refusing)
            proxy.setMode(.forwarding)
        }
        var received: [ZooKeeperSessionEvent] = []
        for await event in events { received.append(event) }
        #expect(received.dropFirst().first == .disconnected(server: proxy.connectString))
        #expect(received.last == .expired(sessionID: sessionID))
        #expect(!received.contains { if case .reconnected = $0 { true } else { false } })
        do {
            _ = try await watch.event
            Issue.record("a watch of an expired session must fail")
        } catch let error as ZooKeeperError {
            #expect(error.code == .sessionExpired)
        }
        do {
            _ = try await client.getData(root)
            Issue.record("an expired client must refuse requests")
        } catch let error as ZooKeeperError {
            #expect(error.code == .sessionExpired)
            #expect(error.path == root)
        }
        #expect(client.sessionID == sessionID)
        await client.close()
        }
    }

    @Test func connectTimeoutNamesTheServers() async throws {
        try await withProxy { proxy in
            proxy.setMode(.blackhole)
            var configuration = try TestServer.configuration(proxy.connectString)
            configuration.connectTimeout = .seconds(1)
            let start = ContinuousClock.now
            do {
                _ = try await ZooKeeperClient.connect(configuration)
                Issue.record("connecting to a silent server must time out")
            } catch let error as ZooKeeperError {
                #expect(error.code == .connectTimeout)
                #expect(error.message.contains(proxy.connectString))
            }
            // The 1 s given, not the configuration's 10 s: room for a loaded machine, far from the default.
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(8), "\(elapsed)")
        }
    }

    @Test func digestACLsDenyOthers() async throws {
        let root = try await TestServer.uniqueRoot()
        let server = try await TestServer.shared()
        var configuration = try TestServer.configuration(server.connectString)
        configuration.credentials = [.digest(user: "pop", password: "secret")]
        let owner = try await ZooKeeperClient.connect(configuration)
        let (path, _) = try await owner.create("\(root)/private", data: "x".bytes, acl: ZooKeeperACL.creatorAll)
        let (acl, _) = try await owner.getACL(path)
        #expect(acl == ZooKeeperACL.digestAll(user: "pop", password: "secret"))
        _ = try await owner.create("\(root)/shared", data: "y".bytes, acl: ZooKeeperACL.digestAll(user: "reader", password: "pw") + ZooKeeperACL.creatorAll)
        await owner.close()

        try await withClient { stranger in
            do {
                _ = try await stranger.getData(path)
                Issue.record("reading without credentials must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .noAuth)
                #expect(error.path == path)
            }
            try await stranger.addAuth(.digest(user: "reader", password: "pw"))
            #expect(try await stranger.getData("\(root)/shared").data == "y".bytes)
            await #expect(throws: ZooKeeperError.self) { try await stranger.getData(path) }
            try await stranger.addAuth(scheme: "digest", auth: "pop:secret".bytes)
            #expect(try await stranger.getData(path).data == "x".bytes)
        }
    }

    @Test func digestIDsMatchZooKeeper() {
        // What `java -cp zookeeper.jar org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:secret` prints.
        #expect(ZooKeeperACL.digest(user: "super", password: "secret") == "super:lK75jTNcA+U9vtVEw5vB51mj/w4=")
    }

    @Test func rejectedCredentialsEndTheSession() async throws {
        let client = try await TestServer.client()
        let events = client.sessionEvents
        do {
            try await client.addAuth(scheme: "nosuchscheme", auth: [1, 2, 3])
            Issue.record("an unknown scheme must be rejected")
        } catch let error as ZooKeeperError {
            #expect(error.code == .authFailed)
        }
        var received: [ZooKeeperSessionEvent] = []
        for await event in events { received.append(event) }
        #expect(received.last == .authFailed(scheme: "nosuchscheme"))
        #expect(received.count == 2)
        await #expect(throws: ZooKeeperError.self) { try await client.exists("/") }
        await client.close()
    }

    @Test func chrootMapsEveryPath() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { plain in
            try await withClient(chroot: root) { chrooted in
                let (path, _) = try await chrooted.create("/a", data: [1])
                #expect(path == "/a")
                let (sequential, _) = try await chrooted.create("/s-", mode: .ephemeralSequential)
                #expect(sequential.hasPrefix("/s-"))
                #expect(try await plain.getData("\(root)/a").data == [1])
                #expect(try await chrooted.getChildren("/").children.sorted() == ["a", String(sequential.dropFirst())].sorted())
                #expect(try await chrooted.getEphemerals("/") == [sequential])
                let (_, _, watch) = try await chrooted.getData("/a", watch: true)
                let recursive = try await chrooted.addWatch("/", mode: .persistentRecursive)
                _ = try await plain.setData("\(root)/a", data: [2])
                #expect(try await watch.event == ZooKeeperWatchEvent(type: .nodeDataChanged, path: "/a"))
                var iterator = recursive.makeAsyncIterator()
                #expect(try await iterator.next() == ZooKeeperWatchEvent(type: .nodeDataChanged, path: "/a"))
                let results = try await chrooted.multi([.create(path: "/m", data: [])])
                guard case .create(let created, _) = results.first else { Issue.record("expected a create result"); return }
                #expect(created == "/m")
            }
        }
    }
}
