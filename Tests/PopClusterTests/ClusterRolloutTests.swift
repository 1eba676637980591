import Foundation
import PopState
import PopTestSupport
import TestProcesses
import Testing

extension PopClusterSuite {
    /// Canary rollouts with automatic revert on four machines, each in its own network namespace with its own agent,
    /// on a 3-member ensemble: a crashing signature reaches only the canary and is reverted; a health check that never
    /// passes is reverted at its deadline; a good signature rolls to all four in batches; a killed agent does not
    /// stop a rollout. Each time, what restarted is what `--plan --json` predicted.
    @Suite struct ClusterRolloutTests {
        static let machines = ["m1", "m2", "m3", "m4"]
        static let all = Set(machines)

        static var fourMachines: Cluster.Options {
            var options = Cluster.Options()
            options.machines = 4
            return options
        }

        /// Runs `body` on a fresh cluster of four machines, each with its agent, where `web` (the command template
        /// running `sleep`) is deployed on every machine under the rollout policy `policy`; with a store watcher of the
        /// test's own and web's instances once every one runs.
        static func withRollout(
            policy: [String], _ body: (Cluster, StoreWatcher, [String: StatusReport.Instance]) async throws -> Void
        ) async throws {
            try await withCluster(Self.fourMachines) { cluster in
                try await cluster.startAgents()
                try await cluster.popOK(["add", "web", "--template", "command", "--command", "sleep 100000"])
                try await cluster.popOK(["deploy", "web"] + Self.machines)
                try await cluster.popOK(["config", "web"] + policy)
                try await StoreWatcher.with(cluster) { watcher in
                    let first = try await ServiceInstances.settled(watcher.namespace, "web", on: Self.all)
                    try await body(cluster, watcher, first)
                }
            }
        }

        /// Runs `pop config web ARGUMENTS --plan --json`: it must exit 2 and print the plan.
        static func plan(_ cluster: Cluster, _ arguments: [String]) async throws -> ChangePlan {
            let result = try await cluster.pop(["config", "web"] + arguments + ["--plan", "--json"])
            #expect(result.status == 2, "\(result)")
            return try ChangePlan.decode(result.stdout)
        }

        /// `pop status web --json`'s rollout of web.
        static func rollout(_ cluster: Cluster) async throws -> StatusReport.Rollout? {
            try StatusReport.decode(try await cluster.popOK(["status", "web", "--json"]).stdout).service("web")?.rollout
        }

        /// The machines that ever ran `signature`, from every agent's lifecycle events (`pop events web --json`).
        static func machinesThatRan(_ signature: String, _ cluster: Cluster) async throws -> Set<String> {
            let lines = try await cluster.popOK(["events", "web", "--json"]).stdout.split(separator: "\n")
            let events = try lines.map { try JSONDecoder().decode(JournalOutput.self, from: Data($0.utf8)) }
            return Set(events.filter { $0.kind == "started" && $0.signature == signature }.map(\.machine))
        }

        @Test("canary 1: a crash reaches only the canary and is reverted, a check that never passes is reverted at its deadline, a good signature rolls to all four in batches of --max-parallel; each as planned")
        func canaryRevertAndRollout() async throws {
            try await Self.withRollout(policy: [
                "--canary", "1", "--max-parallel", "2", "--healthy-time", "3s", "--healthy-deadline", "30s", "--auto-revert",
            ]) { cluster, watcher, first in
                let good = try #require(first["m1"]?.signature)

                // Bad input: a clear error, exit 2, nothing changed.
                let stored = try await cluster.popOK(["dump", "/pop/services/web"]).stdout
                for (arguments, word) in [
                    (["--canary", "5"], "more than the 4 machines"), (["--healthy-time=-1s"], "out of range"),
                    (["--healthy-deadline", "soon"], "not a duration"),
                ] {
                    let result = try await cluster.pop(["config", "web"] + arguments)
                    #expect(result.status == 2, "\(result)")
                    #expect(result.stderr.contains(word), "\(result)")
                }
                #expect(try await cluster.popOK(["dump", "/pop/services/web"]).stdout == stored, "the store is unchanged")

                // A crash: only the canary ever runs it; the revert brings the old signature back; the other three
                // keep their processes. What restarted is the plan's first batch, the canary.
                let crashPlan = try await Self.plan(cluster, ["--command", "false"])
                #expect(crashPlan.restarts.map(\.machine) == Self.machines)
                #expect(crashPlan.batches == [["m1"], ["m2", "m3"], ["m4"]])
                let crashed = try await cluster.pop(
                    ["config", "web", "--command", "false", "--wait", "--timeout", "120"], timeout: .seconds(150))
                #expect(crashed.status == 1, "\(crashed)")
                #expect(crashed.stderr.contains("reverted") && crashed.stderr.contains("m1: backoff"), "\(crashed)")
                let reverted = try await ServiceInstances.settled(watcher.namespace, "web", on: Self.all) { instances in
                    instances.values.allSatisfy { $0.signature == good }
                }
                #expect(ServiceInstances.restarted(first, reverted) == Set(crashPlan.batches[0]))
                let bad = try #require(crashPlan.signatureAfter)
                #expect(try await Self.machinesThatRan(bad, cluster) == ["m1"], "only the canary ever ran \(bad)")
                let history = try await cluster.popOK(["history", "web"]).stdout
                #expect(history.contains("automatic revert to version 0"), "\(history)")
                #expect(try await cluster.popOK(["status", "web"]).stdout.contains("web: rollout reverted (m1: backoff"))
                let revertedRollout = try #require(try await Self.rollout(cluster))
                #expect(revertedRollout.phase == .reverted && revertedRollout.signature == good, "\(revertedRollout)")
                #expect(revertedRollout.running == 4 && revertedRollout.machines == 4, "\(revertedRollout)")
                #expect(revertedRollout.reason?.hasPrefix("m1: backoff") == true, "\(revertedRollout)")

                // A health check that never passes (nothing listens on the port): reverted at its deadline.
                try await cluster.popOK(["config", "web", "--healthy-deadline", "5s"])
                let uncheckedPlan = try await Self.plan(cluster, ["--port", "45999"])
                #expect(uncheckedPlan.restarts.map(\.machine) == Self.machines)
                let asked = ContinuousClock.now
                let unhealthy = try await cluster.pop(
                    ["config", "web", "--port", "45999", "--wait", "--timeout", "120"], timeout: .seconds(150))
                let took = ContinuousClock.now - asked
                #expect(unhealthy.status == 1, "\(unhealthy)")
                #expect(unhealthy.stderr.contains("m1 not healthy within 5 s"), "\(unhealthy)")
                #expect(took >= .seconds(5), "reverted after \(took), before the deadline")
                let again = try await ServiceInstances.settled(watcher.namespace, "web", on: Self.all) { instances in
                    instances.values.allSatisfy { $0.signature == good }
                }
                #expect(ServiceInstances.restarted(reverted, again) == Set(uncheckedPlan.batches[0]))
                let unchecked = try #require(uncheckedPlan.signatureAfter)
                #expect(try await Self.machinesThatRan(unchecked, cluster) == ["m1"], "only the canary ever ran \(unchecked)")
                for machine in ["m2", "m3", "m4"] {
                    #expect(again[machine]?.pid == first[machine]?.pid, "\(machine) never restarted")
                }

                // A good signature: the canary, then two at a time, each once the canary has been healthy for 3 s.
                let goodPlan = try await Self.plan(cluster, ["--command", "sleep 100001"])
                #expect(goodPlan.batches == [["m1"], ["m2", "m3"], ["m4"]])
                let signature = try #require(goodPlan.signatureAfter)
                let rolled = try await cluster.pop(
                    ["config", "web", "--command", "sleep 100001", "--wait", "--timeout", "120"], timeout: .seconds(150))
                #expect(rolled.status == 0, "\(rolled)")
                let done = try await ServiceInstances.settled(watcher.namespace, "web", on: Self.all) { instances in
                    instances.values.allSatisfy { $0.signature == signature }
                }
                #expect(ServiceInstances.restarted(again, done) == Set(goodPlan.restarts.map(\.machine)))
                let healthyAt = { (machine: String) in done[machine]?.since?.addingTimeInterval(3) ?? .distantFuture }
                let started = { (machine: String) in done[machine]?.started ?? .distantPast }
                for machine in ["m2", "m3"] {
                    #expect(started(machine) >= healthyAt("m1"), "\(machine) started before the canary was healthy: \(done)")
                }
                // m2 and m3 are one batch: neither waited for the other to be healthy; m4 waited for one of them.
                #expect(started("m3") < healthyAt("m2") && started("m2") < healthyAt("m3"), "\(done)")
                #expect(started("m4") >= min(healthyAt("m2"), healthyAt("m3")), "\(done)")
                #expect(try await cluster.popOK(["status", "web"]).stdout.contains("web: rollout completed; 4 of 4 run"))
                let completed = try await Self.rollout(cluster)
                #expect(
                    completed == StatusReport.Rollout(phase: .completed, signature: signature, running: 4, machines: 4),
                    "\(String(describing: completed))")
            }
        }

        @Test("the agent next in line is killed mid-rollout: the others go on without it, it catches up when back, and the rollout completes as planned")
        func rolloutOutlivesAKilledAgent() async throws {
            try await Self.withRollout(policy: [
                "--canary", "1", "--max-parallel", "1", "--healthy-time", "10s", "--healthy-deadline", "120s", "--auto-revert",
            ]) { cluster, watcher, first in
                let plan = try await Self.plan(cluster, ["--command", "sleep 100002"])
                #expect(plan.batches == Self.machines.map { [$0] })
                let signature = try #require(plan.signatureAfter)
                // The change is written and its command gone.
                try await cluster.popOK(["config", "web", "--command", "sleep 100002"])

                // The canary runs the new signature and m2 waits out its healthy time: m2's agent is killed.
                let canary = try await ServiceInstances.settled(watcher.namespace, "web", on: Self.all, current: { $0 == "m1" })
                let during = try await Self.rollout(cluster)
                if let healthy = canary["m1"]?.since?.addingTimeInterval(10), Date() < healthy {
                    #expect(during?.phase == .canary, "\(String(describing: during))")
                }
                let victim = try #require(cluster.machine("m2")?.agent)
                await victim.crash()
                let oldPID = try #require(first["m2"]?.pid)
                #expect(canary["m2"]?.pid == oldPID, "m2 had not restarted when its agent was killed")

                // Once its session is gone the others go on without it; its instance runs on, untouched.
                let rolled = try await ServiceInstances.settled(
                    watcher.namespace, "web", on: Self.all, timeout: .seconds(120),
                    { instances in
                        instances["m2"]?.machineUp == false
                            && ["m1", "m3", "m4"].allSatisfy { instances[$0]?.signature == signature }
                    },
                    current: { $0 != "m2" })
                #expect(Processes.isAlive(oldPID), "m2's instance runs on without its agent")
                let healthyAt = rolled["m1"]?.since?.addingTimeInterval(10) ?? .distantFuture
                #expect((rolled["m3"]?.started ?? .distantPast) >= healthyAt, "m3 waited for the canary: \(rolled)")
                #expect(try await Self.rollout(cluster)?.phase == .completed, "every machine with an agent runs it")

                // Its agent back, the machine catches up: every machine restarted once, as planned, and nothing
                // was reverted.
                try await #require(cluster.machine("m2")).startAgent()
                let done = try await ServiceInstances.settled(watcher.namespace, "web", on: Self.all) { instances in
                    instances.values.allSatisfy { $0.signature == signature }
                }
                #expect(ServiceInstances.restarted(first, done) == Set(plan.restarts.map(\.machine)))
                #expect(!Processes.isAlive(oldPID))
                #expect(!(try await cluster.popOK(["history", "web"]).stdout.contains("automatic revert")))
                let completed = try await Self.rollout(cluster)
                #expect(
                    completed == StatusReport.Rollout(phase: .completed, signature: signature, running: 4, machines: 4),
                    "\(String(describing: completed))")
            }
        }
    }
}
