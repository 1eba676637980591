import Foundation
import TestProcesses
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

/// Checks this client against kazoo, Python's ZooKeeper client: each reads what the other wrote.
@Suite("Interoperability with kazoo", .timeLimit(.minutes(5)))
struct KazooInteropTests {
    /// Drives kazoo: `dump HOSTS PATH USER PASSWORD` prints a node as JSON; `write HOSTS ROOT USER PASSWORD` creates
    /// nodes and prints what it created.
    static let script = #"""
        import sys, json
        from kazoo.client import KazooClient
        from kazoo.security import make_digest_acl
        command, hosts, path, user, password = sys.argv[1:6]
        zk = KazooClient(hosts=hosts)
        zk.start(timeout=15)
        zk.add_auth("digest", user + ":" + password)
        if command == "dump":
            data, stat = zk.get(path)
            acls, _ = zk.get_acls(path)
            print(json.dumps({
                "data": data.hex(), "version": stat.version, "children": sorted(zk.get_children(path)),
                "acl": [[a.perms, a.id.scheme, a.id.id] for a in acls],
            }))
        elif command == "write":
            node = zk.create(path + "/kazoo", bytes(range(256)), acl=[make_digest_acl(user, password, all=True)])
            sequential = [zk.create(path + "/kazoo/s-", b"", sequence=True) for _ in range(3)]
            print(json.dumps({"node": node, "sequential": sequential}))
        zk.stop()
        """#

    static func kazoo(_ arguments: [String]) async throws -> [String: Any] {
        // The python3 on PATH, the one kazoo was installed for.
        let result = try await CommandRunner.run(
            ["python3", "-c", script] + arguments, environment: ProcessInfo.processInfo.environment,
            scratch: FileManager.default.temporaryDirectory, timeout: .seconds(120))
        guard result.status == 0 else {
            throw TimeoutError(message: "kazoo failed (is it installed? `pip install kazoo`): \(result.stderr)")
        }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
    }

    @Test func kazooReadsWhatThisClientWrites() async throws {
        let root = try await TestServer.uniqueRoot()
        let server = try await TestServer.shared()
        var configuration = try TestServer.configuration(server.connectString)
        configuration.credentials = [.digest(user: "alice", password: "wonderland")]
        let client = try await ZooKeeperClient.connect(configuration)
        let data = (0...255).map { UInt8($0) }
        let acl = ZooKeeperACL.digestAll(user: "alice", password: "wonderland") + ZooKeeperACL.readOnly
        let (node, _) = try await client.create("\(root)/swift", data: data, acl: acl)
        var sequential: [String] = []
        for _ in 0..<3 { sequential.append(try await client.create("\(node)/s-", mode: .persistentSequential).path) }
        _ = try await client.setData(node, data: data)
        await client.close()

        let dump = try await Self.kazoo(["dump", server.connectString, node, "alice", "wonderland"])
        #expect(dump["data"] as? String == data.map { String(format: "%02x", $0) }.joined())
        #expect(dump["version"] as? Int == 1)
        #expect(dump["children"] as? [String] == sequential.map { String($0.split(separator: "/").last!) })
        let kazooACL = (dump["acl"] as? [[Any]] ?? []).map { "\($0[0]):\($0[1]):\($0[2])" }
        #expect(kazooACL == acl.map { "\($0.permissions.rawValue):\($0.id.scheme):\($0.id.id)" })
    }

    @Test func thisClientReadsWhatKazooWrites() async throws {
        let root = try await TestServer.uniqueRoot()
        let server = try await TestServer.shared()
        let written = try await Self.kazoo(["write", server.connectString, root, "bob", "builder"])
        let node = try #require(written["node"] as? String)
        let sequential = try #require(written["sequential"] as? [String])

        let client = try await TestServer.client()
        do {
            _ = try await client.getData(node)
            Issue.record("kazoo's digest ACL must deny a client without credentials")
        } catch let error as ZooKeeperError {
            #expect(error.code == .noAuth)
        }
        try await client.addAuth(.digest(user: "bob", password: "builder"))
        let (data, _) = try await client.getData(node)
        #expect(data == (0...255).map { UInt8($0) })
        let (acl, _) = try await client.getACL(node)
        #expect(acl == ZooKeeperACL.digestAll(user: "bob", password: "builder"))
        let (children, _) = try await client.getChildren(node)
        #expect(children.sorted().map { "\(node)/\($0)" } == sequential)
        await client.close()
    }
}
