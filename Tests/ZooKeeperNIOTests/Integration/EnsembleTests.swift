import Foundation
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

@Suite("Failover in a 3-member ensemble", .timeLimit(.minutes(5)))
struct EnsembleTests {
    @Test func clientMovesToAnotherMemberWithItsSession() async throws {
        try await withZooKeeperEnsemble(size: 3) { ensemble in
            try Self.expectEveryMemberOnPortsOfItsOwn(ensemble)
            // The move is tested, not a race with expiry: an election on a loaded machine may take seconds.
            let sessionTimeout = Duration.seconds(60)
            let client = try await ZooKeeperClient.connect(try TestServer.configuration(ensemble.connectString, sessionTimeout: sessionTimeout))
            let sessionID = client.sessionID
            _ = try await client.create("/app")
            let (ephemeral, _) = try await client.create("/app/eph", mode: .ephemeral)
            let (_, _, dataWatch) = try await client.getData("/app", watch: true)
            let persistent = try await client.addWatch("/app", mode: .persistentRecursive)
            var events = client.sessionEvents.makeAsyncIterator()

            guard case .connected(sessionID, _, _) = await events.next() else {
                Issue.record("a new subscriber first learns the current state")
                return
            }
            let first = try #require(client.connectedServer.flatMap { ensemble.member(at: $0) })
            let stoppedAt = ContinuousClock.now
            await first.kill()
            #expect(await events.next() == .disconnected(server: first.connectString))
            guard case .reconnected(let resumed, let server) = await events.next() else {
                Issue.record("expected a reconnect")
                return
            }
            #expect(ContinuousClock.now - stoppedAt < sessionTimeout)
            #expect(resumed == sessionID)
            #expect(server != first.connectString)
            #expect(client.connectedServer == server)

            // The session, its ephemeral node and its watches survived the move.
            #expect(try await client.exists(ephemeral)?.ephemeralOwner == sessionID)
            let observer = try await ZooKeeperClient.connect(try TestServer.configuration(ensemble.connectString))
            _ = try await observer.setData("/app", data: [1])
            #expect(try await dataWatch.event == ZooKeeperWatchEvent(type: .nodeDataChanged, path: "/app"))
            var iterator = persistent.makeAsyncIterator()
            #expect(try await iterator.next() == ZooKeeperWatchEvent(type: .nodeDataChanged, path: "/app"))
            #expect(try await observer.exists(ephemeral)?.ephemeralOwner == sessionID)

            // The killed member comes back and catches up.
            try await first.restart()
            try await ensemble.waitForQuorum()
            await client.close()
            _ = try await observer.exists("/app", watch: true)
            #expect(try await observer.exists(ephemeral) == nil)
            await observer.close()
        }
    }

    /// Ports picked one after another may repeat; a repeated client port once left an ensemble of two members, one
    /// answering for the other, which lost its quorum when the leader was killed.
    static func expectEveryMemberOnPortsOfItsOwn(_ ensemble: ZooKeeperEnsemble) throws {
        var ports: [String] = []
        for member in ensemble.members {
            #expect(member.isRunning, "member \(member.memberID) runs")
            let configuration = try String(contentsOf: member.folder.appendingPathComponent("zoo.cfg"), encoding: .utf8)
            for line in configuration.split(separator: "\n") {
                if line.hasPrefix("clientPort=") { ports.append(String(line.dropFirst("clientPort=".count))) }
                if line.hasPrefix("server.\(member.memberID)=") { ports += line.split(separator: ":").dropFirst().map(String.init) }
            }
        }
        #expect(ports.count == 9, "\(ports)")
        #expect(Set(ports).count == ports.count, "every port distinct: \(ports)")
    }
}
