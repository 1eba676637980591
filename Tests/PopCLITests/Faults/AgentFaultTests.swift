import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faults around the agent's own process: killed, left a zombie, started on a damaged store.
@Suite(.serialized, .timeLimit(.minutes(3)))
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
            let before = try await pop.waitFor("steady") { $0.state == "running" && $0.pid != nil }
            let agent = try #require(pop.agentPID())

            kill(agent, SIGKILL)
            #expect(await ProcessScan.waitForExit(agent, within: .seconds(10)))
            #expect(ProcessScan.isZombie(agent), "the killed agent stays a zombie: its new parent does not reap")

            let started = ContinuousClock.now
            try await pop.ok("start")
            let elapsed = ContinuousClock.now - started
            // The dead agent's session lasts 10 s; waiting for it is the fault.
            #expect(elapsed < .seconds(5), "pop start took \(elapsed)")
            let after = try await pop.waitFor("steady") { $0.state == "running" && $0.pid != nil && $0.machineUp }
            #expect(after.pid == before.pid, "the instance was adopted, not restarted")
        }
    }
}
