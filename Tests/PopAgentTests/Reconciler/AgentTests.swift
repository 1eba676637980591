#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import ServiceLifecycle
import PopAgent
@testable import PopState
import Testing

/// The agent end to end, in-process, against the embedded store in a temporary pop home, with real processes.
@Suite(.serialized) struct AgentTests {
    @Test func deployThenRunning() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let spec = try AgentFixture.spec("web")
                let web = try await fixture.deploy(spec)
                let record = try await fixture.waitForRunning(web)
                let pid = try #require(record.pid)
                #expect(kill(pid, 0) == 0, "the recorded pid is a live process")
                #expect(record.signature == spec.signature)
                #expect(record.restarts == 0)
                let machines = try await fixture.namespace.machines()
                #expect(machines.map(\.id) == [fixture.machine])
                #expect(machines.first?.agentPID == getpid())
                #expect(machines.first?.agentVersion == "test")
            }
        }
    }

    @Test func theAgentFollowsOnlyWhatConcernsItsMachine() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { agent in
                let paths = fixture.namespace.paths
                let me = fixture.machine
                let web = try ServiceName("web")
                let other = try ServiceName("other")
                let elsewhere = try MachineID("elsewhere")
                // This machine's assignments, and for the one service placed here its spec and this machine's
                // placement: nothing of `other`, placed elsewhere.
                let expected: Set<String> = [
                    paths.assignments(me) + "/**", paths.machines, paths.machine(me),
                    paths.service(web), paths.placement(web, me) + "/**",
                ]
                // Observed from before the deploys, so that no event of the agent's own slips by unseen.
                let observations = agent.observations()
                try await fixture.deploy(try AgentFixture.spec("web"))
                try await fixture.deploy(try AgentFixture.spec("other"), on: [elsewhere])
                // Both services followed, and the agent's own record write echoed through its placement watch (after
                // which nothing of this machine changes any more), in whichever order they come.
                try await AgentFixture.seen(
                    in: observations, "both services followed and web's record written",
                    [
                        {
                            if case .followed(let followed) = $0 { return Set(followed) == expected }
                            return false
                        },
                        {
                            if case .storeEvent(let event) = $0 {
                                return event.path == paths.instance(web, me) && event.kind == .created
                            }
                            return false
                        },
                    ])
                let record = try #require(try await fixture.record(web))
                #expect(record.state == .running)
                let followed = Set(agent.followedPaths)
                #expect(followed == expected, "follows \(followed.sorted())")
                // Nothing recursive over the services, their placements or another machine's records.
                #expect(
                    !followed.contains { $0.hasSuffix("/**") && !$0.hasSuffix("/tasks/**") && !$0.hasSuffix("/\(me)/**") })
                #expect(!followed.contains { $0.contains(elsewhere.rawValue) })

                // Another machine's record changes, and changes of a service placed elsewhere, reach no watch of this
                // agent: web's packages recorded after them, announced through this machine's assignment, are the
                // first event it sees (a watch delivers in order).
                let before = agent.storeEventsSeen
                _ = try await fixture.store.create(paths.instance(other, elsewhere), data: [], mode: .persistent)
                _ = try await fixture.store.set(paths.instance(other, elsewhere), data: [1], version: nil)
                try await fixture.store.delete(paths.instance(other, elsewhere), version: nil)
                _ = try await fixture.store.set(paths.service(other), data: try fixture.store.get(paths.service(other)).data, version: nil)
                _ = try await fixture.namespace.appendPackages(other, ["lxml"])
                _ = try await fixture.namespace.createTask(other, TaskRequest(task: "show", arguments: [], machines: [elsewhere], created: Date(), timeoutMilliseconds: 60_000))
                _ = try await fixture.namespace.appendPackages(web, ["lxml"])
                let seenFirst = try await AgentFixture.next(in: observations, "the packages change") {
                    if case .storeEvent(let event) = $0 { return event.path == paths.assignment(me, web) }
                    return false
                }
                #expect(seenFirst.filter { if case .storeEvent = $0 { true } else { false } }.isEmpty, "\(seenFirst)")
                #expect(agent.storeEventsSeen == before + 1, "only web's packages change reached the agent")

                // A removed service is no longer followed.
                _ = try await fixture.observe(agent, "web no longer followed") {
                    if case .followed(let followed) = $0 { return !followed.contains(paths.service(web)) }
                    return false
                } then: {
                    try await fixture.namespace.removeService(web)
                }
                #expect(Set(agent.followedPaths) == expected.filter { !$0.hasPrefix(paths.service(web)) })
            }
        }
    }

    @Test func onTheEmbeddedStoreOneSubtreeWatchFollowsEverything() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent(followsWholeNamespace: nil) { agent in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let first = try await fixture.waitForRunning(web)
                #expect(agent.followedPaths == [fixture.namespace.prefix + "/**"])
                // Someone else deleting the record is still seen through the one watch.
                try await fixture.store.delete(fixture.namespace.paths.instance(web, fixture.machine), version: nil)
                let again = try await fixture.waitForRecord(web, "the record written again") { $0.state == .running }
                #expect(again.pid == first.pid)
            }
        }
    }

    @Test func anInstanceRecordDeletedBySomeoneElseIsWrittenAgain() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let first = try await fixture.waitForRunning(web)
                try await fixture.store.delete(fixture.namespace.paths.instance(web, fixture.machine), version: nil)
                let again = try await fixture.waitForRecord(web, "the record written again") { $0.state == .running }
                #expect(again.pid == first.pid, "the instance was not restarted, only its record written again")
            }
        }
    }

    @Test func deployBeforeTheAgentStarts() async throws {
        try await withAgentFixture { fixture in
            let web = try await fixture.deploy(try AgentFixture.spec("web"))
            try await fixture.withAgent { _ in
                let record = try await fixture.waitForRunning(web)
                #expect(kill(try #require(record.pid), 0) == 0)
            }
        }
    }

    @Test func anAgentWithoutANamespaceSaysSo() async throws {
        try await withAgentFixture { fixture in
            try await fixture.store.delete(fixture.namespace.paths.machines, version: nil)
            try await fixture.store.delete(fixture.namespace.paths.services, version: nil)
            try? await fixture.store.delete(fixture.namespace.paths.endpointKey, version: nil)
            try await fixture.store.delete(fixture.namespace.paths.facts, version: nil)
            try await fixture.store.delete(fixture.namespace.paths.assignments, version: nil)
            try await fixture.store.delete(fixture.namespace.prefix, version: nil)
            let agent = try fixture.makeAgent()
            await #expect {
                try await agent.run()
            } throws: { error in
                (error as? PopError)?.code == .notInitialized
            }
        }
    }

    @Test func killedInstanceIsRestartedWithANewPID() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let first = try await fixture.waitForRunning(web)
                let oldPID = try #require(first.pid)
                kill(oldPID, SIGKILL)
                let second = try await fixture.waitForRecord(web, "restarted") {
                    $0.state == .running && $0.pid != nil && $0.pid != oldPID
                }
                #expect(second.restarts >= 1)
                #expect(kill(try #require(second.pid), 0) == 0)
            }
        }
    }

    @Test func configurationChangeRestartsWithTheNewSignature() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let spec = try AgentFixture.spec("web")
                let web = try await fixture.deploy(spec)
                let first = try await fixture.waitForRunning(web)
                let current = try await fixture.namespace.service(web)
                var changed = current.spec
                changed.options["greeting"] = .string("bonjour")
                try await fixture.namespace.updateService(changed, expectedVersion: current.version)
                let newSignature = changed.signature
                let second = try await fixture.waitForRecord(web, "running the new signature") {
                    $0.state == .running && $0.signature == newSignature
                }
                #expect(changed.signature != spec.signature)
                #expect(second.pid != first.pid)
                #expect(await AgentFixture.waitForExit([try #require(first.pid)]), "the old process is gone")
            }
        }
    }

    @Test func restartGenerationRestartsTheInstance() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let first = try await fixture.waitForRunning(web)
                try await fixture.namespace.restart(web)
                let second = try await fixture.waitForRecord(web, "restarted by request") {
                    $0.state == .running && $0.pid != nil && $0.pid != first.pid
                }
                #expect(second.signature == first.signature)
            }
        }
    }

    @Test func aCrashLoopBecomesFatalUntilRestarted() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                // Fails until the file `ready` exists in its folder.
                let web = try await fixture.deploy(
                    try AgentFixture.spec("web", command: ["sh", "-c", "test -f ready || exit 3; exec sleep 300"]))
                let fatal = try await fixture.waitForRecord(web, "FATAL") { $0.state == .fatal }
                #expect(fatal.pid == nil)
                #expect(fatal.lastError?.contains("3") == true)
                #expect(
                    FileManager.default.createFile(
                        atPath: fixture.home.instanceFolder(fixture.machine, web) + "/ready", contents: Data()))
                try await fixture.namespace.restart(web)
                let running = try await fixture.waitForRunning(web)
                #expect(running.restarts == 0)
            }
        }
    }

    @Test func undeployStopsTheWholeProcessGroupAndDeletesTheRecord() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                // A grandchild in the instance's group, as real services have; the shell says when both children
                // exist by writing to a FIFO.
                let started = try fixture.makeSentinel("started")
                let web = try await fixture.deploy(
                    try AgentFixture.spec(
                        "web", command: ["sh", "-c", "sleep 300 & sleep 300 & echo started > \"$1\"; wait", "sh", started]))
                let record = try await fixture.waitForRunning(web)
                let leader = try #require(record.pid)
                #expect(await AgentFixture.waitForSentinel(started), "the instance's shell started its children")
                let members = AgentFixture.members(ofGroup: leader)
                #expect(members.count == 3, "the shell and its two children share the instance's group")
                try await fixture.namespace.undeploy(web, machines: [fixture.machine])
                #expect(await AgentFixture.waitForExit(members), "every process of the instance's group exited")
                #expect(AgentFixture.members(ofGroup: leader).isEmpty)
                try await fixture.waitForNoRecord(web)
            }
        }
    }

    @Test func aNewAgentAdoptsTheRunningInstances() async throws {
        try await withAgentFixture { fixture in
            let web = try ServiceName("web")
            let db = try ServiceName("db")
            let (webBefore, dbBefore) = try await fixture.withAgent { _ in
                try await fixture.deploy(try AgentFixture.spec("web"))
                try await fixture.deploy(try AgentFixture.spec("db"))
                return (try await fixture.waitForRunning(web), try await fixture.waitForRunning(db))
            }
            #expect(kill(try #require(webBefore.pid), 0) == 0, "instances keep running when the agent stops")
            // The stopped agent's session is closed, so its records are gone; the next agent publishes them again.
            #expect(try await fixture.record(web) == nil)
            try await fixture.withAgent { _ in
                let webAfter = try await fixture.waitForRunning(web)
                let dbAfter = try await fixture.waitForRunning(db)
                #expect(webAfter.pid == webBefore.pid)
                #expect(dbAfter.pid == dbBefore.pid)
                #expect(webAfter.restarts == webBefore.restarts)
                // The adopted instance is supervised: a crash is restarted.
                kill(try #require(webAfter.pid), SIGKILL)
                let restarted = try await fixture.waitForRecord(web, "restarted after adoption") {
                    $0.state == .running && $0.pid != nil && $0.pid != webAfter.pid
                }
                #expect(restarted.restarts >= 1)
            }
        }
    }

    @Test func gracefulShutdownOfAServiceGroupLeavesInstancesRunning() async throws {
        try await withAgentFixture { fixture in
            let agent = try fixture.makeAgent()
            let group = ServiceGroup(services: [agent], logger: Logger(label: "test.group"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let record = try await fixture.waitForRunning(web)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                #expect(kill(try #require(record.pid), 0) == 0, "the instance outlives the agent")
                #expect(try await fixture.namespace.machines().isEmpty, "the machine's registration went with the session")
                #expect(try await fixture.record(web) == nil)
            }
        }
    }

    @Test func stopInstancesOnShutdown() async throws {
        try await withAgentFixture { fixture in
            let record = try await fixture.withAgent(stopInstancesOnShutdown: true) { _ in
                try await fixture.waitForRunning(try await fixture.deploy(try AgentFixture.spec("web")))
            }
            #expect(await AgentFixture.waitForExit([try #require(record.pid)]))
        }
    }

    @Test func aMalformedSpecDoesNotStopAnotherService() async throws {
        try await withAgentFixture { fixture in
            let bad = try await fixture.deploy(try AgentFixture.spec("bad"))
            _ = try await fixture.store.set(
                fixture.namespace.paths.service(bad), data: Array("{not json".utf8), version: nil)
            let web = try await fixture.deploy(try AgentFixture.spec("web"))
            try await fixture.withAgent { _ in
                let record = try await fixture.waitForRunning(web)
                #expect(record.pid != nil)
                let badRecord = try await fixture.waitForRecord(bad, "reporting its error") { $0.lastError != nil }
                #expect(badRecord.state == .fatal)
                #expect(badRecord.pid == nil)
                #expect(badRecord.lastError?.contains("malformed") == true)
                // Fixing the spec starts it.
                _ = try await fixture.store.set(
                    fixture.namespace.paths.service(bad), data: try AgentFixture.spec("bad").canonicalEncoding(),
                    version: nil)
                let fixed = try await fixture.waitForRunning(bad)
                #expect(fixed.lastError == nil)
            }
        }
    }

    @Test func aSpecThatCannotBeTurnedIntoACommandIsReportedFatal() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web", command: ["sleep", "{nope}"]))
                let record = try await fixture.waitForRecord(web, "reporting its error") { $0.lastError != nil }
                #expect(record.state == .fatal)
                #expect(record.pid == nil)
                #expect(record.lastError?.contains("nope") == true)
            }
        }
    }

    @Test func anExpiredSessionIsReplacedWithoutDuplicatingInstances() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let before = try await fixture.waitForRunning(web)
                let firstStore = try #require(fixture.agentStores.withLock { $0.last } as? EmbeddedStore)
                firstStore.suspendHeartbeats()
                // The session expires (3 s), its ephemeral nodes vanish, and the agent registers and publishes again.
                let after = try await fixture.wait("a record from a new session") { () -> InstanceRecord? in
                    guard fixture.agentStores.withLock({ $0.count }) >= 2,
                        let stat = try await fixture.store.exists(fixture.namespace.paths.instance(web, fixture.machine)),
                        stat.ephemeralOwner != firstStore.sessionID
                    else { return nil }
                    return try await fixture.record(web)
                }
                #expect(after.pid == before.pid, "the instance kept running and was not started again")
                #expect(after.state == .running)
                #expect(try await fixture.namespace.machines().map(\.id) == [fixture.machine])
            }
        }
    }

    /// The scheduler opens no session of its own: its candidate lives in the agent's session, and follows it to the
    /// next one when it expires.
    @Test func theSchedulerStandsInTheAgentsOwnSession() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let election = fixture.namespace.paths.election
                @Sendable func candidates() async throws -> [(name: String, owner: Int64)] {
                    guard try await fixture.store.exists(election) != nil else { return [] }
                    var found: [(String, Int64)] = []
                    for name in try await fixture.store.children(election) {
                        if let stat = try await fixture.store.exists(election + "/" + name) {
                            found.append((name, stat.ephemeralOwner))
                        }
                    }
                    return found
                }
                let first = try await fixture.wait("a scheduler candidate") { try await candidates().first }
                let stores = fixture.agentStores.withLock { $0 }
                #expect(stores.count == 1, "the agent and its scheduler opened \(stores.count) sessions")
                let firstStore = try #require(stores.first as? EmbeddedStore)
                #expect(first.owner == firstStore.sessionID)
                #expect(first.name.hasPrefix("candidate-\(fixture.machine)-"), "\(first.name)")
                firstStore.suspendHeartbeats()
                // The session expires (3 s) with the candidate; the scheduler stands again in the agent's next one.
                let next = try await fixture.wait("a candidate in the agent's next session") {
                    () -> [(name: String, owner: Int64)]? in
                    let stores = fixture.agentStores.withLock { $0 }
                    let found = try await candidates()
                    guard stores.count >= 2, let last = stores.last, found.contains(where: { $0.owner == last.sessionID })
                    else { return nil }
                    return found
                }
                #expect(next.count == 1, "\(next.map(\.name))")
                #expect(fixture.agentStores.withLock { $0.count } == 2)
            }
        }
    }
}

/// A python template: the agent creates the instance's virtual environment as a setup step.
@Suite(.serialized) struct AgentPythonTests {
    @Test func aPythonInstanceInstallsItsEnvironmentThenRuns() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let script = "import os, sys, time; print(os.environ['VIRTUAL_ENV'], sys.prefix, flush=True); time.sleep(300)"
                let template = ResolvedTemplate(
                    name: "python", command: ["{python}", "-c", script], stopTimeoutMilliseconds: 2000,
                    tasks: [TemplateTask(name: "where", command: ["python", "-c", "import sys; print(sys.prefix)"])],
                    python: PythonEnvironment())
                let web = try await fixture.deploy(
                    ServiceSpec(name: try ServiceName("py"), template: template, options: [:]))
                // Creating a virtual environment (ensurepip included) takes seconds on an idle machine and minutes
                // beside a pip install on a loaded one; the bounds separate "slow" from "never".
                _ = try await fixture.waitForRecord(web, "installing", timeout: .seconds(120)) {
                    $0.state == .installing || $0.state == .running
                }
                let record = try await fixture.waitForRunning(web, timeout: .seconds(300))
                let folder = fixture.home.instanceFolder(fixture.machine, web)
                #expect(FileManager.default.fileExists(atPath: folder + "/venv/bin/python"))
                #expect(FileManager.default.fileExists(atPath: folder + "/constraints.txt"))
                #expect(kill(try #require(record.pid), 0) == 0)
                // Tasks run with the environment's bin folder first on PATH.
                let id = try await fixture.namespace.createTask(
                    web,
                    TaskRequest(
                        task: "where", arguments: [], machines: [fixture.machine], created: Date(),
                        timeoutMilliseconds: 120_000))
                let result = try await fixture.waitForResult(web, id)
                #expect(result.output == folder + "/venv\n")
            }
        }
    }
}
