import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import Testing
import TestProcesses
#if canImport(Glibc)
import Glibc
#endif

/// Canary rollouts with automatic revert, with four real agents (four machine ids on one ZooKeeper namespace, one
/// host): a crashing or never-healthy signature reaches only the canary and is reverted; a good one reaches all four
/// in batches; what restarted is what `--plan` predicted.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct CanaryRolloutTests {
    static let machines = ["can-a", "can-b", "can-c", "can-d"]

    @Test func aCrashingSignatureReachesOnlyTheCanaryAndIsRevertedAGoodOneRollsEverywhere() async throws {
        try await withMachines(Self.machines) { runners in
            let pop = runners[0]
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 100000")
            try await pop.ok(["deploy", "web"] + Self.machines)
            try await pop.ok(
                "config", "web", "--canary", "1", "--max-parallel", "2", "--healthy-time", "1s", "--healthy-deadline",
                "20s", "--auto-revert")
            let first = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines))
            let good = try #require(first.values.first?.signature)

            // Bad input changes nothing.
            for (arguments, word) in [
                (["--canary", "5"], "more than the 4 machines"), (["--healthy-time=-1s"], "out of range"),
                (["--healthy-deadline", "soon"], "not a duration"),
            ] {
                let result = try await pop.run(["config", "web"] + arguments)
                #expect(result.status == 2, "\(result)")
                #expect(result.stderr.contains(word), "\(result)")
            }
            #expect(try await pop.ok("history", "web", "--json").stdout.contains("\"version\" : 0"))

            // A crash: only the canary ever runs it, the revert brings the old signature back, the rest never restart.
            let crashPlan = try await PlanAccuracyTests.plan(pop, ["config", "web", "--command", "false"])
            #expect(crashPlan["batches"] as? [[String]] == [["can-a"], ["can-b", "can-c"], ["can-d"]])
            let crashed = try await pop.run(["config", "web", "--command", "false", "--wait", "--timeout", "120"])
            #expect(crashed.status == 1, "\(crashed)")
            #expect(crashed.stderr.contains("reverted") && crashed.stderr.contains("can-a"), "\(crashed)")
            let reverted = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines)) { instances in
                instances.values.allSatisfy { $0.signature == good }
            }
            #expect(PlanAccuracyTests.changedPIDs(first, reverted) == ["can-a"], "only the canary restarted")
            let history = try await pop.ok("history", "web")
            #expect(history.stdout.contains("automatic revert to version 0"), "\(history)")
            let revertedStatus = try await pop.ok("status", "web")
            #expect(revertedStatus.stdout.contains("web: rollout reverted (can-a: backoff"), "\(revertedStatus)")

            // A health check that never passes: reverted at its deadline.
            try await pop.ok("config", "web", "--healthy-deadline", "4s")
            let unhealthy = try await pop.run(["config", "web", "--port", "45999", "--wait", "--timeout", "120"])
            #expect(unhealthy.status == 1, "\(unhealthy)")
            #expect(unhealthy.stderr.contains("not healthy within 4 s"), "\(unhealthy)")
            let again = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines)) { instances in
                instances.values.allSatisfy { $0.signature == good }
            }
            #expect(Set(PlanAccuracyTests.changedPIDs(reverted, again)).isSubset(of: ["can-a"]), "only the canary restarted")
            #expect(again["can-b"]?.pid == first["can-b"]?.pid && again["can-d"]?.pid == first["can-d"]?.pid)

            // A good signature rolls to all four, canary first, then in batches of two.
            let goodPlan = try await PlanAccuracyTests.plan(pop, ["config", "web", "--command", "sleep 100001"])
            let rolled = try await pop.run(["config", "web", "--command", "sleep 100001", "--wait", "--timeout", "120"])
            #expect(rolled.status == 0, "\(rolled)")
            let signature = try #require(goodPlan["signatureAfter"] as? String)
            let done = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines)) { instances in
                instances.values.allSatisfy { $0.signature == signature }
            }
            #expect(PlanAccuracyTests.changedPIDs(again, done) == Set(PlanAccuracyTests.machines(goodPlan, "restarts")))
            // The canary ran the new signature for the healthy time before the next batch started.
            let canaryStart = try #require(done["can-a"]?.since)
            let batchStart = try #require(done["can-b"]?.since)
            #expect(batchStart.timeIntervalSince(canaryStart) >= 1, "can-b started \(batchStart.timeIntervalSince(canaryStart)) s after the canary")
            let status = try await pop.ok("status", "web")
            #expect(status.stdout.contains("web: rollout completed; 4 of 4 run"), "\(status)")
        }
    }

    @Test func aRolloutOutlivesAKilledAgentAndTheCommandThatStartedIt() async throws {
        try await withMachines(Self.machines) { runners in
            let pop = runners[0]
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 100000")
            try await pop.ok(["deploy", "web"] + Self.machines)
            // The healthy time is the window in which the machine next in line waits for the canary: long enough for
            // a loaded machine to kill its agent within it.
            try await pop.ok("config", "web", "--canary", "1", "--max-parallel", "1", "--healthy-time", "20s", "--auto-revert")
            let first = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines))
            // The change is written and its command gone; then the agent of the machine next in line is killed while
            // it waits for the canary.
            try await pop.ok("config", "web", "--command", "sleep 100002")
            let signature = try #require(try await pop.statusReport().service("web")?.signature)
            let agent = try #require(runners[1].agentPID())
            kill(agent, SIGKILL)
            #expect(await Processes.waitForExit([agent], timeout: .seconds(30)))
            // The others go on without it once its session is gone; its own instance keeps the old signature.
            let rolled = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines)) { instances in
                ["can-a", "can-c", "can-d"].allSatisfy { instances[$0]?.signature == signature }
            } machineUp: { $0 != "can-b" }
            #expect(rolled["can-b"]?.machineUp == false)
            #expect(Processes.isAlive(try #require(first["can-b"]?.pid)), "its instance runs on, untouched, without its agent")
            // Its agent back, the machine catches up.
            try await runners[1].ok("start")
            let done = try await PlanAccuracyTests.settled(pop, on: Set(Self.machines)) { instances in
                instances.values.allSatisfy { $0.signature == signature }
            }
            #expect(PlanAccuracyTests.changedPIDs(first, done) == Set(Self.machines))
            #expect(!(try await pop.ok("history", "web").stdout.contains("automatic revert")))
        }
    }
}

/// Runs `body` with one agent per machine id on a fresh ZooKeeper namespace; every agent and instance is stopped
/// before this returns.
func withMachines(_ machines: [String], _ body: ([PopRunner]) async throws -> Void) async throws {
    let host = try await CLIFixture.chroot("pop-agents")
    let runners = try machines.map { machine in
        try PopRunner(label: machine, environment: ["POP_MACHINE_ID": machine, "POP_HOST": host])
    }
    func stopping(_ index: Int) async throws {
        guard index < runners.count else {
            try await body(runners)
            return
        }
        try await runners[index].withAgentStoppedAfterwards {
            if index == 0 { try await runners[0].ok("init") }
            try await runners[index].ok("start")
            try await stopping(index + 1)
        }
    }
    try await stopping(0)
}
