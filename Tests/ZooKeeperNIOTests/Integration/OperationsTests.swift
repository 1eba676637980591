import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

@Suite("Operations against a real server", .timeLimit(.minutes(5)))
struct OperationsTests {
    @Test func createGetSetDelete() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            let (path, stat) = try await client.create("\(root)/node", data: "v1".bytes)
            #expect(path == "\(root)/node")
            #expect(stat.version == 0)
            #expect(stat.dataLength == 2)
            let (data, readStat) = try await client.getData(path)
            #expect(data == "v1".bytes)
            #expect(readStat == stat)
            let newStat = try await client.setData(path, data: "v2".bytes, version: 0)
            #expect(newStat.version == 1)
            await #expect(throws: ZooKeeperError.self) { try await client.setData(path, data: "v3".bytes, version: 0) }
            do {
                _ = try await client.setData(path, data: "v3".bytes, version: 0)
                Issue.record("a stale version must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .badVersion)
                #expect(error.path == path)
            }
            do {
                try await client.delete(path, version: 0)
                Issue.record("a stale version must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .badVersion)
            }
            try await client.delete(path, version: 1)
            #expect(try await client.exists(path) == nil)
            do {
                _ = try await client.getData(path)
                Issue.record("reading a deleted node must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .noNode)
                #expect(error.message.contains(path))
            }
        }
    }
}

extension OperationsTests {
    @Test func createModes() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            let (first, _) = try await client.create("\(root)/seq-", mode: .persistentSequential)
            let (second, _) = try await client.create("\(root)/seq-", mode: .persistentSequential)
            #expect(first == "\(root)/seq-0000000000")
            #expect(second == "\(root)/seq-0000000001")

            let (ephemeral, ephemeralStat) = try await client.create("\(root)/eph", data: [1], mode: .ephemeral)
            #expect(ephemeralStat.ephemeralOwner == client.sessionID)
            #expect(ephemeralStat.isEphemeral)
            let (ephemeralSequential, _) = try await client.create("\(root)/es-", mode: .ephemeralSequential)
            #expect(ephemeralSequential.hasPrefix("\(root)/es-"))
            #expect(ephemeralSequential.count == "\(root)/es-".count + 10)
            do {
                _ = try await client.create("\(ephemeral)/child")
                Issue.record("ephemeral nodes cannot have children")
            } catch let error as ZooKeeperError {
                #expect(error.code == .noChildrenForEphemerals)
            }
            do {
                _ = try await client.create(ephemeral)
                Issue.record("creating an existing node must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .nodeExists)
            }
            do {
                _ = try await client.create("\(root)/missing/child")
                Issue.record("creating under a missing parent must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .noNode)
            }
            #expect(try await client.getEphemerals(root).sorted() == [ephemeral, ephemeralSequential].sorted())

            // A TTL node is created with the server's extended types; it is removed once expired and childless.
            let (ttl, ttlStat) = try await client.create("\(root)/ttl", data: [7], mode: .persistentWithTTL(milliseconds: 60_000))
            #expect(ttl == "\(root)/ttl")
            #expect(ttlStat.version == 0)

            // A container disappears after its last child is deleted.
            let (container, _) = try await client.create("\(root)/container", mode: .container)
            _ = try await client.create("\(container)/child")
            let (_, watch) = try await client.exists(container, watch: true)
            try await client.delete("\(container)/child")
            let event = try await withTimeout(.seconds(15), "the container's deletion") { try await watch.event }
            #expect(event == ZooKeeperWatchEvent(type: .nodeDeleted, path: container))
        }
    }

    @Test func childrenACLSyncAndCounts() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            for name in ["b", "a", "c"] { _ = try await client.create("\(root)/\(name)") }
            _ = try await client.create("\(root)/a/deep")
            let (children, stat) = try await client.getChildren(root)
            #expect(children.sorted() == ["a", "b", "c"])
            #expect(stat.numChildren == 3)
            #expect(try await client.getAllChildrenNumber(root) == 4)

            let (acl, aclStat) = try await client.getACL("\(root)/a")
            #expect(acl == ZooKeeperACL.open)
            #expect(aclStat.aversion == 0)
            let newStat = try await client.setACL("\(root)/a", acl: ZooKeeperACL.readOnly, version: 0)
            #expect(newStat.aversion == 1)
            #expect(try await client.getACL("\(root)/a").acl == ZooKeeperACL.readOnly)
            do {
                _ = try await client.setData("\(root)/a", data: [1])
                Issue.record("a read-only node must refuse writes")
            } catch let error as ZooKeeperError {
                #expect(error.code == .noAuth)
            }
            try await client.sync(root)
            #expect(try await client.exists("\(root)/b")?.version == 0)
        }
    }

    @Test func multiIsAtomic() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            _ = try await client.create("\(root)/existing", data: "x".bytes)
            let results = try await client.multi([
                .create(path: "\(root)/one", data: "1".bytes),
                .create(path: "\(root)/seq-", data: [], mode: .persistentSequential),
                .setData(path: "\(root)/existing", data: "y".bytes, version: 0),
                .check(path: "\(root)/existing", version: 1),
            ])
            #expect(results.count == 4)
            guard case .create(let path, let stat) = results[0] else { Issue.record("expected a create result"); return }
            #expect(path == "\(root)/one")
            // ZooKeeper 3.8 answers creates inside a multi without a stat.
            #expect(stat == nil || stat?.dataLength == 1)
            guard case .create(let sequential, _) = results[1] else { Issue.record("expected a create result"); return }
            // The sequence number is the parent's child version: two children were created before.
            #expect(sequential == "\(root)/seq-0000000002")
            guard case .setData(let setStat) = results[2] else { Issue.record("expected a setData result"); return }
            #expect(setStat.version == 1)
            #expect(results[3] == .check)

            do {
                _ = try await client.multi([
                    .create(path: "\(root)/two", data: []),
                    .delete(path: "\(root)/one", version: 5),
                    .setData(path: "\(root)/existing", data: "z".bytes),
                ])
                Issue.record("the multi must fail")
            } catch let error as ZooKeeperError {
                #expect(error.code == .badVersion)
                #expect(error.failedOperationIndex == 1)
                #expect(error.path == "\(root)/one")
            }
            // Nothing of the failed multi was applied.
            #expect(try await client.exists("\(root)/two") == nil)
            #expect(try await client.getData("\(root)/existing").data == "y".bytes)

            let reads = try await client.multiRead([.getData(path: "\(root)/existing"), .getChildren(path: root), .getData(path: "\(root)/nope")])
            #expect(reads.count == 3)
            guard case .data(let data, let dataStat) = reads[0] else { Issue.record("expected data"); return }
            #expect(data == "y".bytes)
            #expect(dataStat.version == 1)
            guard case .children(let children) = reads[1] else { Issue.record("expected children"); return }
            #expect(children.sorted() == ["existing", "one", "seq-0000000002"])
            guard case .failure(let error) = reads[2] else { Issue.record("expected a failure"); return }
            #expect(error.code == .noNode)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let path = "\(root)/n\(index)"
                        _ = try await client.create(path, data: Array("\(index)".utf8))
                        let (data, _) = try await client.getData(path)
                        #expect(data == Array("\(index)".utf8))
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.getChildren(root).children.count == 500)
        }
    }

    @Test func framesAboveTheLimitAreRefused() async throws {
        let root = try await TestServer.uniqueRoot()
        try await withClient { client in
            // Outgoing: refused before sending, and the session is unharmed.
            do {
                _ = try await client.create("\(root)/big", data: [UInt8](repeating: 1, count: 0x100000))
                Issue.record("an oversized request must be refused")
            } catch let error as ZooKeeperError {
                #expect(error.code == .frameTooLarge)
                #expect(error.message.contains("jute.maxbuffer"))
            }
            _ = try await client.create("\(root)/medium", data: [UInt8](repeating: 2, count: 5000))
        }
        // Incoming: a client with a small limit refuses the large reply and keeps working.
        let server = try await TestServer.shared()
        var configuration = try TestServer.configuration(server.connectString)
        configuration.maxBufferSize = 1000
        let client = try await ZooKeeperClient.connect(configuration)
        do {
            _ = try await client.getData("\(root)/medium")
            Issue.record("an oversized reply must be refused")
        } catch let error as ZooKeeperError {
            #expect(error.code == .frameTooLarge)
        }
        #expect(try await client.exists("\(root)/medium")?.dataLength == 5000)
        await client.close()
    }

    @Test func invalidPathsAreRejectedLocally() async throws {
        try await withClient { client in
            for path in ["", "relative", "/trailing/", "/a//b", "/a/./b", "/a/../b"] {
                do {
                    _ = try await client.getData(path)
                    Issue.record("\(path) must be rejected")
                } catch let error as ZooKeeperError {
                    #expect(error.code == .invalidPath)
                }
            }
        }
    }
}
