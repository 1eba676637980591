import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

@Suite("Operations against a real server")
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
