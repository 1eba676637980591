import Foundation
import PopState
import PopTestSupport
import TestProcesses
import Testing

extension PopClusterSuite {
    /// The failures and changes a real cluster sees, with the real `pop` binary and agents in their own namespaces.
    @Suite struct ClusterScenarioTests {
        @Test("1. a service deployed to 3 machines runs on each, on the same port at each machine's address")
        func deployToThreeMachines() async throws {
            try await withCluster { cluster in
                let web = try await ProbeDeployment.start(cluster)
                let rows = try #require(try await web.status().service("web")).instances
                #expect(rows.map(\.machine) == ["m1", "m2", "m3"])
                #expect(rows.allSatisfy { $0.state == "running" && $0.current && $0.machineUp }, "\(rows)")
                let answers = await web.answers()
                for row in rows {
                    #expect(answers[row.machine] == "\(row.machine) \(row.pid ?? 0) v1", "\(row.machine)'s own address answered \(answers[row.machine] ?? "")")
                }
                let table = try await cluster.popOK(["status", "web"]).stdout
                #expect(table.contains("1 service, 3 instances (3 running) · 3 machines up"), "\(table)")
                for machine in ["m1", "m2", "m3"] { #expect(table.contains(machine), "\(table)") }
            }
        }

        @Test("2. a config change restarts every instance; with --max-parallel 1 one machine at a time")
        func configChangeAndRollingRestart() async throws {
            try await withCluster { cluster in
                let web = try await ProbeDeployment.start(cluster)
                let before = try #require(try await web.status().service("web"))
                try await cluster.popOK(["config", "web", "--tag", "v2"])
                try await web.waitUntilRunning()
                let after = try #require(try await web.status().service("web"))
                #expect(after.signature != before.signature)
                #expect(after.instances.allSatisfy { $0.state == "running" && $0.signature == after.signature }, "\(after.instances)")
                for (old, new) in zip(before.instances, after.instances) {
                    #expect(old.pid != new.pid, "\(new.machine) was restarted")
                }
                let answered = await web.answers()
                #expect(answered.values.allSatisfy { $0.hasSuffix(" v2") }, "\(answered)")

                let mark = web.recordedEvents().count
                try await cluster.popOK(["config", "web", "--max-parallel", "1", "--tag", "v3"])
                try await web.waitUntilRunning()
                let rollout = Array(web.recordedEvents().dropFirst(mark))
                #expect(rollout.filter { $0.kind == "down" }.count == 3, "\(rollout)")
                #expect(rollout.filter { $0.kind == "up" && $0.tag == "v3" }.count == 3, "\(rollout)")
                #expect(ClusterTestService.mostDownAtOnce(rollout) == 1, "at no moment were two instances down: \(rollout)")
                #expect(rollout.filter { $0.kind == "down" }.map(\.machine) == ["m1", "m2", "m3"], "in machine order")
                let answeredAfterRollout = await web.answers()
                #expect(answeredAfterRollout.values.allSatisfy { $0.hasSuffix(" v3") }, "\(answeredAfterRollout)")
            }
        }

        @Test("3. the ZooKeeper leader is killed: no instance restarts, commands work after the election")
        func leaderKilled() async throws {
            try await withCluster { cluster in
                let web = try await ProbeDeployment.start(cluster)
                let pids = try await web.pids()
                let mark = web.recordedEvents().count
                let leader = try await cluster.ensemble.leader()
                await leader.kill()
                try await cluster.ensemble.waitForQuorum()
                #expect(try await cluster.ensemble.leader().memberID != leader.memberID)

                // Commands work again: a read and a write.
                #expect(try await web.pids() == pids)
                try await cluster.popOK(["add", "spare", "--template", "command", "--command", "sleep 1000"])
                // The agents carry on with their sessions: all machines up, nothing restarted.
                try await StoreWatcher.with(cluster) { watcher in
                    try await watcher.wait(timeout: .seconds(30), "every machine is registered") { $0.machines.count == 3 }
                }
                try await web.waitUntilRunning()
                #expect(try await web.pids() == pids)
                #expect(web.recordedEvents().count == mark, "no instance stopped or started: \(web.recordedEvents().dropFirst(mark))")
                for machine in cluster.machines { #expect(machine.agent?.isRunning == true, "\(machine.id)'s agent runs") }
                try await leader.restart()
            }
        }

        @Test("4. all of ZooKeeper stops for 30 s: instances keep running, agents reconverge without restarts")
        func wholeEnsembleDown() async throws {
            try await withCluster { cluster in
                let web = try await ProbeDeployment.start(cluster)
                let pids = try await web.pids()
                let mark = web.recordedEvents().count
                for member in cluster.ensemble.members { await member.halt() }
                try await Task.sleep(for: .seconds(30))
                for machine in cluster.machines {
                    let pid = try #require(pids[machine.id])
                    #expect(Processes.isAlive(pid), "\(machine.id)'s instance still runs")
                    #expect(machine.agent?.isRunning == true, "\(machine.id)'s agent waits")
                }
                #expect(await web.answers() == Dictionary(uniqueKeysWithValues: cluster.machines.map { ($0.id, "\($0.id) \(pids[$0.id]!) v1") }))

                for member in cluster.ensemble.members { try await member.restart() }
                try await cluster.ensemble.waitForQuorum()
                try await StoreWatcher.with(cluster) { watcher in
                    try await watcher.wait(timeout: .seconds(60), "every machine is registered and every instance running") { snapshot in
                        snapshot.machines.count == 3
                            && snapshot.services.allSatisfy { service in
                                service.placements.allSatisfy { $0.instance?.state == .running && $0.instance?.signature == service.signature }
                            }
                    }
                }
                #expect(try await web.pids() == pids, "the same processes")
                #expect(web.recordedEvents().count == mark, "no needless restart: \(web.recordedEvents().dropFirst(mark))")
                for machine in cluster.machines {
                    #expect(try await web.serviceProcesses(on: machine).count == 1, "no duplicate on \(machine.id)")
                }
            }
        }

        @Test("5. an agent is SIGKILLed: its machine shows down and its instance unknown; a new agent adopts it")
        func agentKilled() async throws {
            try await withCluster { cluster in
                let web = try await ProbeDeployment.start(cluster)
                let pids = try await web.pids()
                let mark = web.recordedEvents().count
                let m2 = cluster.machines[1]
                try await #require(m2.agent).crash()
                try await StoreWatcher.with(cluster) { watcher in
                    try await watcher.wait(timeout: .seconds(40), "m2's session expires") { snapshot in
                        !snapshot.machines.contains { $0.id.rawValue == "m2" }
                    }
                }
                let rows = try #require(try await web.status().service("web")).instances
                let row = try #require(rows.first { $0.machine == "m2" })
                #expect(!row.machineUp && row.state == "unknown" && row.pid == nil, "\(row)")
                #expect(rows.filter { $0.machine != "m2" }.allSatisfy { $0.state == "running" }, "\(rows)")
                let table = try await cluster.popOK(["status", "web"]).stdout
                #expect(table.contains("m2 down"), "\(table)")
                #expect(table.contains("unknown"), "\(table)")
                #expect(Processes.isAlive(try #require(pids["m2"])), "the instance itself keeps running")

                try await m2.startAgent()
                try await web.waitUntilRunning()
                #expect(try await web.pids() == pids, "adopted, not restarted")
                #expect(web.recordedEvents().count == mark, "\(web.recordedEvents().dropFirst(mark))")
                #expect(try await web.serviceProcesses(on: m2).count == 1)
            }
        }

        @Test("6. pop run while one agent is stopped: two results, one not reached, non-zero exit")
        func runWithOneAgentStopped() async throws {
            try await withCluster { cluster in
                _ = try await ProbeDeployment.start(cluster)
                try await #require(cluster.machines[2].agent).stop()
                // The timeout leaves the two running agents time to answer on a loaded machine.
                let result = try await cluster.pop(["run", "--timeout", "20", "web", "hello", "a b"])
                #expect(result.status == 1, "\(result)")
                #expect(result.stdout.contains("hello from m1 a b"), "\(result)")
                #expect(result.stdout.contains("hello from m2 a b"), "\(result)")
                #expect(!result.stdout.contains("hello from m3"), "\(result)")
                #expect(result.stdout.contains("m3: not reached"), "\(result)")
                #expect(result.stdout.contains("2 of 3 machines succeeded"), "\(result)")
            }
        }

        @Test("7. five clients change one service at once: no update lost or half-applied, one final signature")
        func concurrentConfigChanges() async throws {
            try await withCluster { cluster in
                let web = try await ProbeDeployment.start(cluster)
                let version = try await configJSON(cluster)["version"] as? Int
                let results = try await withThrowingTaskGroup(of: CommandResult.self) { group in
                    for client in 1...5 {
                        let machine = cluster.machines[(client - 1) % cluster.machines.count]
                        group.addTask { try await machine.pop(["config", "web", "--o\(client)", "c\(client)", "--tag", "t\(client)"]) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                for result in results { #expect(result.succeeded, "\(result)") }
                let config = try await configJSON(cluster)
                let options = try #require(config["options"] as? [String: Any])
                for client in 1...5 { #expect(options["o\(client)"] as? String == "c\(client)", "client \(client)'s change kept: \(options)") }
                #expect(config["version"] as? Int == (version ?? -100) + 5, "five writes, each on top of the one before")
                let tag = try #require(options["tag"] as? String)
                #expect((1...5).map { "t\($0)" }.contains(tag))

                try await web.waitUntilRunning()
                let final = try #require(try await web.status().service("web"))
                #expect(final.signature == config["signature"] as? String)
                #expect(final.instances.allSatisfy { $0.signature == final.signature && $0.state == "running" }, "\(final.instances)")
                let answered = await web.answers()
                #expect(answered.values.allSatisfy { $0.hasSuffix(" \(tag)") }, "\(answered)")
            }
        }
    }
}

/// `pop config web --json`.
func configJSON(_ cluster: Cluster) async throws -> [String: Any] {
    let output = try await cluster.popOK(["config", "web", "--json"]).stdout
    return try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
}
