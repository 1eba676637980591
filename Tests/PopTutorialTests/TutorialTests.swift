import Testing
import ZooKeeperTestSupport

/// The seed's tutorial with the real `pop` binary, once per store. The two runs are serialized: each wants Plone on
/// port 8080 (the template's default), and the second reuses the wheels the first one downloaded into pip's cache.
@Suite("The seed's tutorial, for real", .serialized)
struct TutorialTests {
    @Test("Plone on the embedded store", .timeLimit(.minutes(20)))
    func embeddedStore() async throws {
        try await TutorialWalk(label: "embedded", storeArguments: [], storeDescription: "embedded store").walk()
    }

    @Test("Plone on a ZooKeeper server", .timeLimit(.minutes(20)))
    func zooKeeper() async throws {
        let server = try await ZooKeeperServer.start()
        do {
            try await TutorialWalk(
                label: "zookeeper", storeArguments: ["--host", server.connectString],
                storeDescription: "ZooKeeper \(server.connectString)"
            ).walk()
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}
