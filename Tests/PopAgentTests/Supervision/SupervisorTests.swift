import Foundation
import Glibc
import PopState
import Testing

@testable import PopAgent

@Suite("Supervisor with real processes", .serialized)
struct SupervisorTests {
    @Test func spawnRunsInItsOwnSessionWithLogFiles() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let configuration = try fixture.configuration(
            "hello", ["sh", "-c", "echo out-$POP_TEST; echo err-line >&2; pwd; exec sleep 1000"])
        try await fixture.withSupervisor { supervisor in
            let events = supervisor.events()
            supervisor.start(configuration)
            let status = try await waitFor(supervisor, "hello") { $0.state == .running && $0.pid != nil }
            let pid = try #require(status?.pid)
            let stat = try #require(ProcessTable.stat(pid))
            #expect(stat.session == pid)
            #expect(stat.processGroup == pid)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/0") == "/dev/null")
            let logs = configuration.logDirectory
            #expect(await eventually { fileText(logs + "/stdout.log").contains("out-yes") })
            #expect(fileText(logs + "/stdout.log").contains(configuration.workingDirectory))
            #expect(fileText(logs + "/stderr.log") == "err-line\n")
            // The agent holds no descriptor to the logs: only the child does.
            let ownDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            let heldLogs = ownDescriptors.filter {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.hasPrefix(logs) == true
            }
            #expect(heldLogs.isEmpty)
            var states: [InstanceState] = []
            for await event in events {
                if case .changed(let changed) = event { states.append(changed.state) }
                if states.last == .running { break }
            }
            #expect(states == [.starting, .running])
            #expect(LocalInstanceRecord.path(in: configuration.stateDirectory).isEmpty == false)
            let record = try #require(try LocalInstanceRecord.read(from: configuration.stateDirectory))
            #expect(record.pid == pid)
            #expect(record.processStartTime == stat.startTime)
        }
    }

    @Test func killedInstanceIsRestartedWithANewPid() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            supervisor.start(try fixture.configuration("victim", ["sleep", "1000"]))
            let first = try #require(try await waitFor(supervisor, "victim") { $0.state == .running }?.pid)
            kill(first, SIGKILL)
            let after = try await waitFor(supervisor, "victim") { [first] in $0.state == .running && $0.pid != first }
            #expect(after?.restarts == 1)
            #expect(after?.lastError == "killed by signal 9 (SIGKILL)")
            #expect(kill(first, 0) != 0)
        }
    }

    @Test func crashLoopBacksOffThenBecomesFatal() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            let events = supervisor.events()
            supervisor.start(try fixture.configuration("crash", ["sh", "-c", "exit 3"]))
            let status = try await waitFor(supervisor, "crash") { $0.state == .fatal }
            #expect(status?.lastError == "exited with status 3")
            #expect(status?.restarts == 3)
            #expect(status?.pid == nil)
            var sawBackoff = false
            for await event in events {
                if case .changed(let changed) = event {
                    if changed.state == .backoff { sawBackoff = true }
                    if changed.state == .fatal { break }
                }
            }
            #expect(sawBackoff)
            // It stays FATAL: a plain start does not retry it, an explicit restart does.
            supervisor.start(try fixture.configuration("crash", ["sh", "-c", "exit 3"]))
            #expect(supervisor.status(of: try ServiceName("crash"))?.state == .fatal)
            let afterRestart = supervisor.events()
            supervisor.restart(try ServiceName("crash"))
            var iterator = afterRestart.makeAsyncIterator()
            guard case .changed(let restarted)? = await iterator.next() else {
                Issue.record("expected a status change after the restart")
                return
            }
            #expect(restarted.state == .starting)
            #expect(restarted.restarts == 0)
        }
    }

    @Test func missingExecutableIsAClearErrorNotACrash() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            supervisor.start(try fixture.configuration("missing", ["pop-no-such-program", "x"]))
            let status = try await waitFor(supervisor, "missing") { $0.state == .fatal }
            #expect(status?.lastError?.contains("'pop-no-such-program' was not found in PATH") == true)
        }
    }

    @Test func stopKillsTheWholeProcessGroupIncludingGrandchildren() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            let name = try ServiceName("family")
            supervisor.start(try fixture.configuration("family", ["sh", "-c", "sleep 1000 & sleep 1000"]))
            let pid = try #require(try await waitFor(supervisor, "family") { $0.state == .running }?.pid)
            #expect(await eventually { processes(inGroup: pid).count >= 3 })
            await supervisor.stop(name)
            #expect(supervisor.status(of: name)?.state == .stopped)
            #expect(await eventually(within: .seconds(10)) { processes(inGroup: pid).isEmpty })
            #expect(try LocalInstanceRecord.read(from: fixture.folder("family/state")) == nil)
        }
    }

    @Test func stopSendsTheStopSignalThenKillsAfterTheTimeout() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            let name = try ServiceName("stubborn")
            // A long stop timeout: stopping well within it proves the signal, not the timeout, ended it.
            let quick = try fixture.configuration("quick", ["sleep", "1000"], stopSignal: .int, stopTimeoutMilliseconds: 30_000)
            let stubborn = try fixture.configuration(
                "stubborn", ["sh", "-c", "trap '' TERM; sleep 1000 & wait; wait"], stopTimeoutMilliseconds: 400)
            supervisor.start(quick)
            supervisor.start(stubborn)
            let pid = try #require(try await waitFor(supervisor, "stubborn") { $0.state == .running }?.pid)
            try await waitFor(supervisor, "quick") { $0.state == .running }
            #expect(await eventually { processes(inGroup: pid).count >= 2 })
            var started = ContinuousClock.now
            await supervisor.stop(try ServiceName("quick"))
            #expect(ContinuousClock.now - started < .seconds(20), "the quick instance stops on its signal, not after a timeout")
            started = ContinuousClock.now
            await supervisor.stop(name)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(400), "it waited the stop timeout")
            #expect(elapsed < .seconds(20), "then SIGKILL ended it")
            #expect(await eventually(within: .seconds(10)) { processes(inGroup: pid).isEmpty })
        }
    }

    @Test func restartedAgentAdoptsRunningInstancesWithoutRestarting() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let configuration = try fixture.configuration("adoptee", ["sleep", "1000"])
        let pidBox = PidBox()
        try await fixture.withSupervisor(leaveRunning: true) { supervisor in
            supervisor.start(configuration)
            pidBox.pid = try await waitFor(supervisor, "adoptee") { $0.state == .running }?.pid ?? 0
        }
        let pid = pidBox.pid
        #expect(pid > 0)
        #expect(kill(pid, 0) == 0, "graceful shutdown must leave the instance running")
        try await fixture.withSupervisor { supervisor in
            let outcome = supervisor.adopt(stateDirectory: configuration.stateDirectory)
            guard case .adopted(let status) = outcome else {
                Issue.record("expected adoption, got \(outcome)")
                return
            }
            #expect(status.pid == pid)
            #expect(status.state == .running)
            #expect(supervisor.adopt(stateDirectory: configuration.stateDirectory) == .alreadySupervised(configuration.name))
            // Starting it with the same configuration (what the reconciler does next) changes nothing.
            supervisor.start(configuration)
            try await Task.sleep(for: .milliseconds(200))
            #expect(supervisor.status(of: configuration.name)?.pid == pid)
            #expect(supervisor.status(of: configuration.name)?.restarts == 0)
            // The adopted process is watched: killing it restarts it.
            kill(pid, SIGKILL)
            let after = try await waitFor(supervisor, "adoptee") { $0.state == .running && $0.pid != pid }
            #expect(after?.restarts == 1)
        }
    }

    @Test func recordWhosePidWasReusedIsNotAdopted() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let configuration = try fixture.configuration("reused", ["sleep", "1000"])
        // Our own pid stands in for a pid reused by another process: alive, but started at another time.
        let me = getpid()
        let stat = try #require(ProcessTable.stat(me))
        let record = LocalInstanceRecord(
            configuration: configuration, pid: me, processStartTime: stat.startTime + 1, processGroup: stat.processGroup,
            started: Date(), restarts: 0)
        try record.write()
        try await fixture.withSupervisor { supervisor in
            let outcome = supervisor.adopt(stateDirectory: configuration.stateDirectory)
            guard case .gone(let name, let reason) = outcome else {
                Issue.record("expected the record to be rejected, got \(outcome)")
                return
            }
            #expect(name == configuration.name)
            #expect(reason.contains("start time differs"))
            #expect(supervisor.status(of: configuration.name) == nil)
            #expect(supervisor.adopt(stateDirectory: fixture.folder("nothing-here")) == .noRecord)
        }
    }

    @Test func tcpHealthCheckMovesStartingToRunning() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let port = freePort()
        let probe = HealthProbe(target: .tcp(port: port), intervalMilliseconds: 200, timeoutMilliseconds: 500,
                                gracePeriodMilliseconds: 20_000)
        // The server waits a moment before listening, so the instance is seen starting first.
        let server = "import time, http.server; time.sleep(0.3); http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=\(port), bind='127.0.0.1')"
        try await fixture.withSupervisor { supervisor in
            supervisor.start(try fixture.configuration("web", ["python3", "-c", server], health: probe))
            try await waitFor(supervisor, "web") { $0.state == .starting && $0.pid != nil }
            let running = try await waitFor(supervisor, "web", within: .seconds(10)) { $0.state == .running }
            #expect(running?.restarts == 0)
            // An http check against the same server also passes.
            let http = try HealthProbe(HealthCheck(kind: .http, url: "http://127.0.0.1:\(port)/", intervalMilliseconds: 200))
            supervisor.start(try fixture.configuration("web2", ["sleep", "1000"], health: http))
            try await waitFor(supervisor, "web2") { $0.state == .running }
        }
    }

    @Test func instanceThatNeverBecomesHealthyIsRestartedThenFatal() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let probe = HealthProbe(target: .tcp(port: freePort()), intervalMilliseconds: 50, timeoutMilliseconds: 100,
                                gracePeriodMilliseconds: 150)
        try await fixture.withSupervisor { supervisor in
            supervisor.start(try fixture.configuration("sick", ["sleep", "1000"], health: probe))
            let status = try await waitFor(supervisor, "sick") { $0.state == .fatal }
            #expect(status?.lastError?.hasPrefix("not healthy within the grace period") == true)
        }
    }

    @Test func setupStepsRunOnceAndFailuresNameTheStep() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let steps = [
            SetupStep(name: "marker", command: ["sh", "-c", "echo making-marker; touch marker"], creates: "marker"),
            SetupStep(name: "count", command: ["sh", "-c", "echo run >> count"]),
        ]
        let configuration = try fixture.configuration("setup", ["sleep", "1000"], setup: steps)
        try await fixture.withSupervisor { supervisor in
            supervisor.start(configuration)
            try await waitFor(supervisor, "setup") { $0.state == .running }
            #expect(fileText(configuration.workingDirectory + "/count") == "run\n")
            #expect(fileText(configuration.logDirectory + "/setup.log") == "making-marker\n")
            supervisor.restart(configuration.name)
            #expect(await eventually { fileText(configuration.workingDirectory + "/count") == "run\nrun\n" })
            try await waitFor(supervisor, "setup") { $0.state == .running }
            #expect(fileText(configuration.logDirectory + "/setup.log") == "making-marker\n", "a done step is skipped")
            let failing = try fixture.configuration(
                "broken", ["sleep", "1000"], setup: [SetupStep(name: "pip", command: ["sh", "-c", "exit 4"])])
            supervisor.start(failing)
            let status = try await waitFor(supervisor, "broken") { $0.state == .fatal }
            #expect(status?.lastError == "setup step 'pip' exited with status 4")
        }
    }

    @Test func configurationChangeRestartsWithTheNewSignature() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            supervisor.start(try fixture.configuration("app", ["sleep", "1000"], signature: "aaaa"))
            let first = try #require(try await waitFor(supervisor, "app") { $0.state == .running }?.pid)
            supervisor.start(try fixture.configuration("app", ["sleep", "999"], signature: "bbbb"))
            let after = try await waitFor(supervisor, "app") { [first] in $0.state == .running && $0.pid != first }
            #expect(after?.signature.hex == "bbbb")
            #expect(after?.restarts == 0)
            let events = supervisor.events()
            await supervisor.remove(try ServiceName("app"))
            #expect(supervisor.status(of: try ServiceName("app")) == nil)
            #expect(try LocalInstanceRecord.read(from: fixture.folder("app/state")) == nil)
            for await event in events {
                if case .removed(let name) = event {
                    #expect(name.rawValue == "app")
                    break
                }
            }
        }
    }

    @Test func noZombiesRemainAfterManyExitsAndOrphans() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        try await fixture.withSupervisor { supervisor in
            // Each leader exits at once, leaving a grandchild; each daemon leaves an orphan that exits later.
            for index in 0..<10 {
                supervisor.start(try fixture.configuration(
                    "flaky-\(index)", ["sh", "-c", "sleep 5 & exit 1"],
                    restartPolicy: RestartPolicy(initialBackoffMilliseconds: 10, maximumQuickFailures: 4)))
                supervisor.start(try fixture.configuration(
                    "daemon-\(index)", ["sh", "-c", "(sleep 0.1 &); exec sleep 1000"]))
            }
            for index in 0..<10 {
                try await waitFor(supervisor, "flaky-\(index)") { $0.state == .fatal }
                try await waitFor(supervisor, "daemon-\(index)") { $0.state == .running }
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(await eventually(within: .seconds(10)) { zombieChildren().isEmpty }, "zombies: \(zombieChildren())")
        }
    }

    @Test func logRotationKeepsDiskUseBounded() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let writer = "import sys, time\nwhile True:\n    sys.stdout.write('x' * 999 + '\\n'); sys.stdout.flush(); time.sleep(0.0005)"
        let rotation = LogRotation(maximumBytes: 64 * 1024, keep: 2)
        let configuration = try fixture.configuration("chatty", ["python3", "-c", writer], logRotation: rotation)
        try await fixture.withSupervisor { supervisor in
            supervisor.start(configuration)
            try await waitFor(supervisor, "chatty") { $0.state == .running }
            let log = configuration.logDirectory + "/stdout.log"
            #expect(await eventually(within: .seconds(10)) { FileManager.default.fileExists(atPath: log + ".2") })
            try await Task.sleep(for: .milliseconds(500))
            let sizes = [log, log + ".1", log + ".2"].map {
                ((try? FileManager.default.attributesOfItem(atPath: $0))?[.size] as? Int) ?? 0
            }
            #expect(!FileManager.default.fileExists(atPath: log + ".3"))
            // Each file stays within the limit plus what a quarter second of writing adds.
            #expect(sizes.allSatisfy { $0 < 1024 * 1024 }, "sizes: \(sizes)")
            // A rotated file holds a whole log (read again if the sample caught a rotation under way).
            #expect(await eventually(within: .seconds(5)) {
                ((try? FileManager.default.attributesOfItem(atPath: log + ".1"))?[.size] as? Int ?? 0) > rotation.maximumBytes
            })
        }
    }
}

final class PidBox: @unchecked Sendable {
    var pid: Int32 = 0
}

@Suite("Supervisor adoption of dead instances", .serialized)
struct SupervisorLeftoverTests {
    @Test func deadLeaderLeftoversAreKilledAndNothingIsAdopted() async throws {
        let fixture = try SupervisorFixture()
        defer { fixture.remove() }
        let configuration = try fixture.configuration("orphaned", ["sh", "-c", "sleep 1000 & sleep 1000"])
        let pidBox = PidBox()
        try await fixture.withSupervisor(leaveRunning: true) { supervisor in
            supervisor.start(configuration)
            pidBox.pid = try await waitFor(supervisor, "orphaned") { $0.state == .running }?.pid ?? 0
            #expect(await eventually { processes(inGroup: pidBox.pid).count == 3 })
        }
        let leader = pidBox.pid
        // The leader dies while no agent runs; its background child lives on in the group.
        kill(leader, SIGKILL)
        #expect(await eventually { ProcessTable.stat(leader) == nil || ProcessTable.stat(leader)?.isZombie == true })
        var status: Int32 = 0
        waitpid(leader, &status, 0)
        #expect(processes(inGroup: leader).count >= 1)
        try await fixture.withSupervisor { supervisor in
            let outcome = supervisor.adopt(stateDirectory: configuration.stateDirectory)
            guard case .gone(_, let reason) = outcome else {
                Issue.record("expected the dead instance not to be adopted, got \(outcome)")
                return
            }
            #expect(reason.contains("killed"), "\(reason)")
            #expect(await eventually(within: .seconds(10)) { processes(inGroup: leader).isEmpty })
        }
    }
}
