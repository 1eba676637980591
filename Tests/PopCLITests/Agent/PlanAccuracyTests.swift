import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import Testing

/// What `--plan` predicts is what real agents then do: three agents (three machine ids on one ZooKeeper namespace),
/// and after each change the instances whose PID changed are exactly the plan's restarts, the ones gone its stops.
@Suite(.serialized, .timeLimit(.minutes(4)))
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
            #expect(Self.machines(restartPlan, "restarts") == ["plan-b"])
            try await pop.ok("restart", "web", "plan-b")
            let second = try await Self.settled(pop, on: Set(Self.machines)) { $0["plan-b"]?.pid != first["plan-b"]?.pid }
            #expect(Self.changedPIDs(first, second) == ["plan-b"])

            // A configuration change: every machine, one at a time.
            let configPlan = try await Self.plan(pop, ["config", "web", "--command", "sleep 100001"])
            #expect(Self.machines(configPlan, "restarts") == Self.machines)
            #expect(configPlan["batches"] as? [[String]] == Self.machines.map { [$0] })
            #expect(configPlan["runningNow"] as? Int == 3)
            #expect(configPlan["lowestRunning"] as? Int == 2)
            let signature = try #require(configPlan["signatureAfter"] as? String)
            try await pop.ok("config", "web", "--command", "sleep 100001")
            let third = try await Self.settled(pop, on: Set(Self.machines)) { instances in
                instances.values.allSatisfy { $0.signature == signature }
            }
            #expect(Self.changedPIDs(second, third) == Set(Self.machines))

            // An undeploy: the plan's stop, and nothing else restarts.
            let undeployPlan = try await Self.plan(pop, ["undeploy", "web", "plan-c"])
            #expect(Self.machines(undeployPlan, "stops") == ["plan-c"])
            #expect(Self.machines(undeployPlan, "restarts").isEmpty)
            try await pop.ok("undeploy", "web", "plan-c")
            let fourth = try await Self.settled(pop, on: ["plan-a", "plan-b"])
            #expect(Set(fourth.keys) == ["plan-a", "plan-b"])
            #expect(Self.changedPIDs(third, fourth).isEmpty)
        }
    }

    /// Runs the command with `--plan --json`: it must exit 2 and print the plan.
    static func plan(_ pop: PopRunner, _ arguments: [String]) async throws -> [String: Any] {
        let result = try await pop.run(arguments + ["--plan", "--json"])
        #expect(result.status == 2, "\(result)")
        return try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result)")
    }

    static func machines(_ plan: [String: Any], _ key: String) -> [String] {
        (plan[key] as? [[String: String]] ?? []).compactMap { $0["machine"] }
    }

    static func changedPIDs(
        _ before: [String: StatusReport.Instance], _ after: [String: StatusReport.Instance]
    ) -> Set<String> {
        Set(after.keys.filter { before[$0]?.pid != after[$0]?.pid })
    }

    /// Waits (on watches) until exactly `machines` show an instance of web, each running with a PID and the current
    /// signature when `machineUp` says its agent should be up, and `also` holds.
    static func settled(
        _ pop: PopRunner, on machines: Set<String>,
        _ also: @escaping @Sendable ([String: StatusReport.Instance]) -> Bool = { _ in true },
        machineUp: @escaping @Sendable (String) -> Bool = { _ in true }
    ) async throws -> [String: StatusReport.Instance] {
        try await pop.withNamespace { namespace in
            let found = try await namespace.read(
                {
                    let instances = try await namespace.report("web").service("web")?.instances ?? []
                    return Dictionary(uniqueKeysWithValues: instances.map { ($0.machine, $0) })
                },
                until: { instances in
                    Set(instances.keys) == machines
                        && instances.values.allSatisfy {
                            !machineUp($0.machine) || ($0.state == "running" && $0.pid != nil && $0.current)
                        }
                        && also(instances)
                },
                wokenByChangesUnder: namespace.prefix, deadline: .now + .seconds(60))
            return try #require(found, "web did not settle on \(machines.sorted()) within 60 s")
        }
    }
}

