import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import Testing

/// What `--plan` predicts is what real agents then do: three agents (three machine ids on one ZooKeeper namespace),
/// and after each change the instances whose PID changed are exactly the plan's restarts, the ones gone its stops.
/// (Canary rollouts are checked the same way on a cluster of four machines: `ClusterRolloutTests`.)
@Suite(.serialized, .timeLimit(.minutes(10)))
struct PlanAccuracyTests {
    static let machines = ["plan-a", "plan-b", "plan-c"]

    @Test func thePlannedRestartsAreTheRestartsThatHappen() async throws {
        try await withMachines(Self.machines) { runners in
            let pop = runners[0]
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 100000")
            try await pop.ok(["deploy", "web"] + Self.machines)
            try await pop.ok("config", "web", "--max-parallel", "1")
            let first = try await Self.settled(pop, on: Set(Self.machines))

            // A restart asked for on one machine.
            let restartPlan = try await Self.plan(pop, ["restart", "web", "plan-b"])
            #expect(restartPlan.restarts.map(\.machine) == ["plan-b"])
            try await pop.ok("restart", "web", "plan-b")
            let second = try await Self.settled(pop, on: Set(Self.machines)) { $0["plan-b"]?.pid != first["plan-b"]?.pid }
            #expect(ServiceInstances.restarted(first, second) == ["plan-b"])

            // A configuration change: every machine, one at a time.
            let configPlan = try await Self.plan(pop, ["config", "web", "--command", "sleep 100001"])
            #expect(configPlan.restarts.map(\.machine) == Self.machines)
            #expect(configPlan.batches == Self.machines.map { [$0] })
            #expect(configPlan.runningNow == 3)
            #expect(configPlan.lowestRunning == 2)
            let signature = try #require(configPlan.signatureAfter)
            try await pop.ok("config", "web", "--command", "sleep 100001")
            let third = try await Self.settled(pop, on: Set(Self.machines)) { instances in
                instances.values.allSatisfy { $0.signature == signature }
            }
            #expect(ServiceInstances.restarted(second, third) == Set(Self.machines))

            // An undeploy: the plan's stop, and nothing else restarts.
            let undeployPlan = try await Self.plan(pop, ["undeploy", "web", "plan-c"])
            #expect(undeployPlan.stops.map(\.machine) == ["plan-c"])
            #expect(undeployPlan.restarts.isEmpty)
            try await pop.ok("undeploy", "web", "plan-c")
            let fourth = try await Self.settled(pop, on: ["plan-a", "plan-b"])
            #expect(Set(fourth.keys) == ["plan-a", "plan-b"])
            #expect(ServiceInstances.restarted(third, fourth).isEmpty)
        }
    }

    /// Runs the command with `--plan --json`: it must exit 2 and print the plan.
    static func plan(_ pop: PopRunner, _ arguments: [String]) async throws -> ChangePlan {
        let result = try await pop.run(arguments + ["--plan", "--json"])
        #expect(result.status == 2, "\(result)")
        return try ChangePlan.decode(result.stdout)
    }

    /// Waits until exactly `machines` run web with the current signature and `also` holds.
    static func settled(
        _ pop: PopRunner, on machines: Set<String>,
        _ also: @escaping @Sendable ([String: StatusReport.Instance]) -> Bool = { _ in true }
    ) async throws -> [String: StatusReport.Instance] {
        try await pop.withNamespace { namespace in
            try await ServiceInstances.settled(namespace, "web", on: machines, also)
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
