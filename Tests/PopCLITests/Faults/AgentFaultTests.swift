import Foundation
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faults around the agent's own process: killed, left a zombie, started on a damaged store.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct AgentFaultTests {
    /// A killed agent that nobody reaps is a zombie, not an agent: the next `pop start` takes over its machine at
    /// once instead of waiting for the dead agent's store session to expire (10 s).
    @Test func aStartDoesNotWaitForAKilledAgentsZombie() async throws {
        try await withFaultMachine { pop in
            try await pop.ok("add", "steady", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "steady")
            let parent = try NonReapingParent.start(pop, ["start"])
            defer { parent.stop() }
            #expect(await parent.commandStatus() == 0, "pop start under the non-reaping parent")
            let before = try #require(try await pop.waitUntilRunning().services.first?.instances.first)
            let agent = try #require(pop.agentPID())

            kill(agent, SIGKILL)
            #expect(await Processes.waitForExit([agent], timeout: .seconds(10)))
            #expect(ProcessScan.isZombie(agent), "the killed agent stays a zombie: its new parent does not reap")

            try await pop.ok("start")
            // The dead agent's session lasts 10 s; waiting for it is the fault. The new agent's log says what it did
            // (a time bound would measure the machine's load as much as the agent): it replaced the zombie's
            // registration at once, or (on a machine so loaded that the session had expired before it started) found
            // none; it never waited for the session to end.
            let log = (try? String(contentsOfFile: pop.home.path + "/machines/\(pop.machine ?? "")/agent.log", encoding: .utf8)) ?? ""
            #expect(!log.contains("waiting for it to end"), "the new agent waited for the zombie's session:\n\(log)")
            let after = try #require(try await pop.waitUntilRunning().services.first?.instances.first)
            #expect(after.pid == before.pid && after.machineUp, "the instance was adopted, not restarted: \(after)")
        }
    }

    /// `pop start` on a store holding data pop cannot read exits 6 (docs/cli.md), says what is wrong, starts no
    /// agent and changes nothing: another layout version, a root pop did not write, a database file that is not one.
    @Test func aStartOnADamagedStoreExits6AndStartsNoAgent() async throws {
        try await CLIFixture.with(.embedded) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            let damages: [(label: String, data: [UInt8], words: [String])] = [
                ("another layout", Array(#"{"layout":99}"#.utf8), ["layout version 99"]),
                ("the layout before assignments", Array(#"{"layout":1}"#.utf8), ["layout version 1", "pop restore --force"]),
                ("not written by pop", Array("hello".utf8), ["not written by pop"]),
            ]
            for damage in damages {
                try await fixture.withNamespace { namespace in
                    _ = try await namespace.store.set("/pop", data: damage.data, version: nil)
                }
                let result = try await fixture.refuses(6, ["start"], mentioning: damage.words)
                #expect(pop.agentPID() == nil, "\(damage.label): no agent runs\n\(result)")
            }
            try await fixture.withNamespace { namespace in
                _ = try await namespace.store.set("/pop", data: Array(#"{"layout":2}"#.utf8), version: nil)
            }

            // A database file that is not one: refused, and left as it was for the operator to look at.
            let database = pop.home.appendingPathComponent("store.sqlite").path
            for file in ["store.sqlite-wal", "store.sqlite-shm"] {
                try? FileManager.default.removeItem(atPath: pop.home.appendingPathComponent(file).path)
            }
            let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            try garbage.write(to: URL(fileURLWithPath: database))
            let result = try await pop.fails(6, ["start"], mentioning: ["damaged", database])
            #expect(pop.agentPID() == nil, "no agent runs\n\(result)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: database)) == garbage, "the file is left as it was")
        }
    }
}
