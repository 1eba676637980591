import CPopAgentLinux
import Foundation
import Glibc
import PopState
import PopTestSupport
import TestProcesses
import Testing

@testable import PopAgent

@Suite("Supervisor with real processes", .serialized, .timeLimit(.minutes(10)))
struct SupervisorTests {
    @Test func spawnRunsInItsOwnSessionWithLogFiles() async throws {
        try await SupervisorFixture.with { fixture in
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
                #expect(await log(logs + "/stdout.log", contains: configuration.workingDirectory))
                #expect(fileText(logs + "/stdout.log").contains("out-yes"))
                #expect(await log(logs + "/stderr.log", contains: "err-line"))
                #expect(fileText(logs + "/stderr.log") == "err-line\n")
                // The instance writes into pipes read by its log writer; the agent holds no log file (only the pipes'
                // write ends, for the instance's next process).
                let output = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/1")
                #expect(output.hasPrefix("pipe:"), "stdout is \(output)")
                let ownDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
                let held = ownDescriptors.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }
                #expect(!held.contains { $0.hasPrefix(logs) }, "\(held)")
                var states: [InstanceState] = []
                for await event in events {
                    if case .changed(let changed) = event { states.append(changed.state) }
                    if states.last == .running { break }
                }
                #expect(states == [.starting, .running])
                let record = try #require(try LocalInstanceRecord.read(from: configuration.stateDirectory))
                #expect(record.pid == pid)
                #expect(record.processStartTime == stat.startTime)
                #expect(record.setupStep == nil)
            }
        }
    }

    /// A child copies only the few lowest descriptors of the supervisor's table (what it needs was put there), so a
    /// supervisor holding many descriptors, even ones without close-on-exec, hands none of them on; and nothing of a
    /// child's pipes stays in the supervisor's table, so a log writer still ends with its instance.
    @Test func childrenGetOnlyTheirOwnDescriptorsWhateverTheSupervisorHolds() async throws {
        // Copies of /dev/null: harmless to whatever else this test process starts meanwhile, should it inherit them.
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let inherited = (0..<200).map { _ in fcntl(null, F_DUPFD, 3) }
        defer { for fd in inherited + [null] { close(fd) } }
        #expect(inherited.allSatisfy { $0 >= 3 })
        @Sendable func descriptors(_ pid: Int32) -> Set<String> {
            Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [])
        }
        /// The log writer reading `folder`: the `pop-log` process whose arguments name it.
        @Sendable func logWriter(of folder: String) -> Int32? {
            let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return processes.compactMap(Int32.init).first { pid in
                let arguments = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                let words = arguments.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return words.first.map { ($0 as NSString).lastPathComponent == "pop-log" } == true && words.contains(folder)
            }
        }
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("lean", ["sleep", "1000"])
            try await fixture.withSupervisor { supervisor in
                supervisor.start(configuration)
                let pid = try #require(try await waitFor(supervisor, "lean") { $0.state == .running }?.pid)
                #expect(descriptors(pid) == ["0", "1", "2"])
                let writer = try #require(logWriter(of: configuration.logDirectory))
                // It opens stdout.log, stdout.idx, stderr.log and stderr.idx in turn as it starts: the last one
                // appearing says it has opened them all.
                #expect(
                    await FileArrival.wait(for: configuration.logDirectory + "/stderr.idx", timeout: .seconds(60)),
                    "the log writer opened its files")
                // stdout.log and stderr.log: a pipe each, on 0 and 3, with /dev/null on 1 and 2; beyond those, only
                // the files it opened itself in the log folder.
                let own = descriptors(writer).subtracting(["0", "1", "2", "3"]).map {
                    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(writer)/fd/\($0)")) ?? "?"
                }
                #expect(descriptors(writer).isSuperset(of: ["0", "1", "2", "3"]))
                #expect(!own.isEmpty && own.allSatisfy { $0.hasPrefix(configuration.logDirectory + "/") }, "\(own)")
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(writer)/fd/1") == "/dev/null")
                let handle = cpop_pidfd_open(writer)
                try #require(handle >= 0)
                defer { close(handle) }
                await supervisor.remove(try ServiceName("lean"))
                // Its instance gone for good, the log writer reads the end of its pipes and exits (a pidfd becomes
                // readable when its process has exited).
                var entry = pollfd(fd: handle, events: Int16(POLLIN), revents: 0)
                var ready: Int32 = -1
                repeat { ready = poll(&entry, 1, 30_000) } while ready < 0 && errno == EINTR
                #expect(ready == 1, "the log writer \(writer) is still running")
            }
        }
    }

    @Test func killedInstanceIsRestartedWithANewPid() async throws {
        try await SupervisorFixture.with { fixture in
            try await fixture.withSupervisor { supervisor in
                supervisor.start(try fixture.configuration("victim", ["sleep", "1000"]))
                let first = try #require(try await waitFor(supervisor, "victim") { $0.state == .running }?.pid)
                kill(first, SIGKILL)
                let after = try await waitFor(supervisor, "victim") { [first] in $0.state == .running && $0.pid != first }
                #expect(after?.restarts == 1)
                #expect(after?.lastError == "killed by signal 9 (SIGKILL)")
                #expect(!ProcessTable.isAlive(first))
            }
        }
    }

    @Test func crashLoopBacksOffThenBecomesFatal() async throws {
        try await SupervisorFixture.with { fixture in
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
    }

    @Test func missingExecutableIsAClearErrorNotACrash() async throws {
        try await SupervisorFixture.with { fixture in
            try await fixture.withSupervisor { supervisor in
                supervisor.start(try fixture.configuration("missing", ["pop-no-such-program", "x"]))
                let status = try await waitFor(supervisor, "missing") { $0.state == .fatal }
                #expect(status?.lastError?.contains("'pop-no-such-program' was not found in PATH") == true)
            }
        }
    }

    @Test func stopKillsTheWholeProcessGroupIncludingGrandchildren() async throws {
        try await SupervisorFixture.with { fixture in
            try await fixture.withSupervisor { supervisor in
                let name = try ServiceName("family")
                let configuration = try fixture.configuration("family", ["sh", "-c", "sleep 1000 & echo started; sleep 1000"])
                supervisor.start(configuration)
                let pid = try #require(try await waitFor(supervisor, "family") { $0.state == .running }?.pid)
                #expect(await log(configuration.logDirectory + "/stdout.log", contains: "started"))
                #expect(processes(inGroup: pid).count >= 2, "sh and its background sleep")
                await supervisor.stop(name)
                #expect(supervisor.status(of: name)?.state == .stopped)
                #expect(await groupEnds(pid))
                #expect(try LocalInstanceRecord.read(from: fixture.folder("family/state")) == nil)
            }
        }
    }

    @Test func stopSendsTheStopSignalThenKillsAfterTheTimeout() async throws {
        try await SupervisorFixture.with { fixture in
            try await fixture.withSupervisor { supervisor in
                let name = try ServiceName("stubborn")
                // A long stop timeout: stopping well within it proves the signal, not the timeout, ended it.
                let quick = try fixture.configuration("quick", ["sleep", "1000"], stopSignal: .int, stopTimeoutMilliseconds: 30_000)
                let stubborn = try fixture.configuration(
                    "stubborn", ["sh", "-c", "trap '' TERM; sleep 1000 & echo started; wait; wait"], stopTimeoutMilliseconds: 400)
                supervisor.start(quick)
                supervisor.start(stubborn)
                let pid = try #require(try await waitFor(supervisor, "stubborn") { $0.state == .running }?.pid)
                try await waitFor(supervisor, "quick") { $0.state == .running }
                #expect(await log(stubborn.logDirectory + "/stdout.log", contains: "started"))
                var started = ContinuousClock.now
                await supervisor.stop(try ServiceName("quick"))
                #expect(ContinuousClock.now - started < .seconds(20), "the quick instance stops on its signal, not after a timeout")
                started = ContinuousClock.now
                await supervisor.stop(name)
                let elapsed = ContinuousClock.now - started
                #expect(elapsed >= .milliseconds(400), "it waited the stop timeout")
                #expect(elapsed < .seconds(20), "then SIGKILL ended it")
                #expect(await groupEnds(pid))
            }
        }
    }

    @Test func restartedAgentAdoptsRunningInstancesWithoutRestarting() async throws {
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("adoptee", ["sleep", "1000"])
            let pidBox = PidBox()
            try await fixture.withSupervisor(leaveRunning: true) { supervisor in
                supervisor.start(configuration)
                pidBox.pid = try await waitFor(supervisor, "adoptee") { $0.state == .running }?.pid ?? 0
            }
            let pid = pidBox.pid
            #expect(pid > 0)
            #expect(ProcessTable.isAlive(pid), "graceful shutdown must leave the instance running")
            try await fixture.withSupervisor { supervisor in
                let outcome = supervisor.adopt(stateDirectory: configuration.stateDirectory)
                guard case .adopted(let status) = outcome else {
                    Issue.record("expected adoption, got \(outcome)")
                    return
                }
                #expect(status.pid == pid)
                #expect(status.state == .running)
                #expect(supervisor.adopt(stateDirectory: configuration.stateDirectory) == .alreadySupervised(configuration.name))
                // Starting it with the same configuration (what the reconciler does next) changes nothing: no event
                // for it comes before a sentinel instance's first one.
                let events = supervisor.events()
                supervisor.start(configuration)
                supervisor.start(try fixture.configuration("sentinel", ["sleep", "1000"]))
                var seen: [InstanceEvent] = []
                for await event in events {
                    if case .changed(let changed) = event, changed.name.rawValue == "sentinel" { break }
                    seen.append(event)
                }
                #expect(seen.isEmpty, "\(seen)")
                #expect(supervisor.status(of: configuration.name)?.pid == pid)
                #expect(supervisor.status(of: configuration.name)?.restarts == 0)
                // The adopted process is watched: killing it restarts it.
                kill(pid, SIGKILL)
                let after = try await waitFor(supervisor, "adoptee") { [pid] in $0.state == .running && $0.pid != pid }
                #expect(after?.restarts == 1)
            }
        }
    }

    @Test func recordWhosePidWasReusedIsNotAdopted() async throws {
        try await SupervisorFixture.with { fixture in
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
    }

    @Test func tcpHealthCheckMovesStartingToRunning() async throws {
        try await SupervisorFixture.with { fixture in
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
    }

    @Test func instanceThatNeverBecomesHealthyIsRestartedThenFatal() async throws {
        try await SupervisorFixture.with { fixture in
            let probe = HealthProbe(target: .tcp(port: freePort()), intervalMilliseconds: 50, timeoutMilliseconds: 100,
                                    gracePeriodMilliseconds: 150)
            try await fixture.withSupervisor { supervisor in
                supervisor.start(try fixture.configuration("sick", ["sleep", "1000"], health: probe))
                let status = try await waitFor(supervisor, "sick") { $0.state == .fatal }
                #expect(status?.lastError?.hasPrefix("not healthy within the grace period") == true)
            }
        }
    }

    @Test func setupStepsRunOnceAndFailuresNameTheStep() async throws {
        try await SupervisorFixture.with { fixture in
            let steps = [
                SetupStep(name: "marker", command: ["sh", "-c", "echo making-marker; touch marker"], creates: "marker"),
                SetupStep(name: "count", command: ["sh", "-c", "echo run >> count"]),
            ]
            let configuration = try fixture.configuration("setup", ["sleep", "1000"], setup: steps)
            try await fixture.withSupervisor { supervisor in
                supervisor.start(configuration)
                try await waitFor(supervisor, "setup") { $0.state == .running }
                #expect(fileText(configuration.workingDirectory + "/count") == "run\n")
                #expect(await log(configuration.logDirectory + "/setup.log", contains: "making-marker"))
                supervisor.restart(configuration.name)
                #expect(await Waiting.file(configuration.workingDirectory + "/count", within: .seconds(10)) { $0 == "run\nrun\n" })
                try await waitFor(supervisor, "setup") { $0.state == .running }
                #expect(fileText(configuration.logDirectory + "/setup.log") == "making-marker\n", "a done step is skipped")
                let failing = try fixture.configuration(
                    "broken", ["sleep", "1000"], setup: [SetupStep(name: "pip", command: ["sh", "-c", "exit 4"])])
                supervisor.start(failing)
                let status = try await waitFor(supervisor, "broken") { $0.state == .fatal }
                #expect(status?.lastError == "setup step 'pip' exited with status 4")
            }
        }
    }

    @Test func configurationChangeRestartsWithTheNewSignature() async throws {
        try await SupervisorFixture.with { fixture in
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
    }

    @Test func noZombiesRemainAfterManyExitsAndOrphans() async throws {
        try await SupervisorFixture.with { fixture in
            try await fixture.withSupervisor { supervisor in
                // Each leader exits at once, leaving a grandchild; each daemon leaves an orphan that exits later.
                for index in 0..<10 {
                    supervisor.start(try fixture.configuration(
                        "flaky-\(index)", ["sh", "-c", "sleep 5 & exit 1"],
                        restartPolicy: RestartPolicy(initialBackoffMilliseconds: 10, maximumQuickFailures: 4)))
                    supervisor.start(try fixture.configuration(
                        "daemon-\(index)", ["sh", "-c", "(sleep 0.1 &); exec sleep 1000"]))
                }
                var leaders: Set<Int32> = []
                for index in 0..<10 {
                    try await waitFor(supervisor, "flaky-\(index)") { $0.state == .fatal }
                    if let pid = try await waitFor(supervisor, "daemon-\(index)", { $0.state == .running })?.pid {
                        leaders.insert(pid)
                    }
                }
                // The orphans are this process's children now (it is a child subreaper), found by their working
                // folder (other tests in this process have children of their own): wait until each has exited,
                // then until the reaper has swept after that; none is left, not even as a zombie.
                let orphans = ProcessTable.children().filter { pid in
                    guard !leaders.contains(pid), ProcessTable.stat(pid)?.session != getsid(0),
                        let folder = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
                    else { return false }
                    return folder.hasPrefix(fixture.root + "/")
                }
                #expect(await Processes.waitForExit(orphans, timeout: .seconds(10)))
                #expect(await sweepAfterNow())
                let left = orphans.filter { ProcessTable.stat($0) != nil }
                #expect(left.isEmpty, "not reaped: \(left.map { ($0, fileText("/proc/\($0)/stat")) })")
            }
        }
    }

    /// A log flood: 18 MB in 256 KiB writes, as fast as the writer can go. Each file stays within its limit at every
    /// moment (sampled at every change of the log folder), the folder within (keep + 1) limits, and nothing is lost
    /// between the files: what they hold is the end of the stream, in order.
    @Test func logFilesStayWithinTheirLimitWhateverTheWriteRate() async throws {
        try await SupervisorFixture.with { fixture in
            let lines = 2 * 1024 * 1024
            // Fixed-width numbered lines ("00000042\n"), written in 256 KiB chunks, then a marker.
            let writer = """
                import os
                data = "".join("%08d\\n" % i for i in range(\(lines))).encode()
                for start in range(0, len(data), 256 * 1024):
                    view = memoryview(data)[start:start + 256 * 1024]
                    while view:
                        view = view[os.write(1, view):]
                os.write(2, b"done\\n")
                import time
                time.sleep(1000)
                """
            let rotation = LogRotation(maximumBytes: 1 << 20, keep: 2)
            let configuration = try fixture.configuration("flood", ["python3", "-c", writer], logRotation: rotation)
            let folder = configuration.logDirectory
            try ProcessSpawner.makeDirectory(folder)
            let sampler = try FolderSizeSampler(folder: folder, prefix: "stdout.log")
            try await fixture.withSupervisor { supervisor in
                supervisor.start(configuration)
                try await waitFor(supervisor, "flood") { $0.state == .running }
                #expect(await log(folder + "/stderr.log", contains: "done", within: .seconds(60)))
                // The writer wrote everything; its log writer has it all once the last line is in the file.
                let last = String(format: "%08d\n", lines - 1)
                #expect(await Waiting.file(folder + "/stdout.log", within: .seconds(30)) { $0.hasSuffix(last) })
                let peak = sampler.stop()
                #expect(peak.largestFile <= rotation.maximumBytes, "a file reached \(peak.largestFile) bytes")
                #expect(
                    peak.total <= (rotation.keep + 1) * rotation.maximumBytes,
                    "the files reached \(peak.total) bytes in all, over \(peak.samples) samples")
                // The rotations happened while it sampled: 18 MB through 1 MiB files is 17 renames and more.
                #expect(peak.samples >= 1 && peak.changes > 17, "the sampler looked \(peak.samples) times at \(peak.changes) changes")
                #expect(!FileManager.default.fileExists(atPath: folder + "/stdout.log.3"))
                for rotated in [".1", ".2"] {
                    // A rotated piece and its index share the limit; the piece was cut at its last newline that fit.
                    let size = ["stdout.log", "stdout.idx"].reduce(0) { sum, name in
                        sum + ((try? FileManager.default.attributesOfItem(atPath: folder + "/" + name + rotated)[.size] as? Int) ?? 0)
                    }
                    #expect(size <= rotation.maximumBytes && size > rotation.maximumBytes - 9, "stdout.log\(rotated) is full: \(size)")
                }
                // .2, .1 and the file, in that order, are the stream's last bytes: no line was lost or doubled.
                let kept = [".2", ".1", ""].map { fileText(folder + "/stdout.log" + $0) }.joined()
                // The kept bytes end the stream of whole 9-byte lines, so they start that many bytes into a line.
                let partial = kept.utf8.count % 9
                let tail = kept.utf8.dropFirst(partial).split(separator: UInt8(ascii: "\n")).map { Int(String(decoding: $0, as: UTF8.self)) ?? -1 }
                #expect(tail.count == kept.utf8.count / 9)
                #expect(tail.last == lines - 1)
                #expect(zip(tail, tail.dropFirst()).allSatisfy { $0 + 1 == $1 }, "the kept lines are not one run")
            }
        }
    }

    /// A restarted instance writes to the same log writer (its pipes are kept between its processes); stopping it
    /// for good ends the writer.
    @Test func aRestartedInstanceKeepsItsLogWriter() async throws {
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("keeper", ["sh", "-c", "echo started $$; exec sleep 1000"])
            let stdout = configuration.logDirectory + "/stdout.log"
            try await fixture.withSupervisor { supervisor in
                supervisor.start(configuration)
                let first = try #require(try await waitFor(supervisor, "keeper") { $0.state == .running }?.pid)
                #expect(await log(stdout, contains: "started \(first)"))
                let writers = ProcessScan.logWriters(of: configuration.logDirectory)
                #expect(writers.count == 1)
                kill(first, SIGKILL)
                let restarted = try await waitFor(supervisor, "keeper") { [first] in $0.state == .running && $0.pid != first }
                let second = try #require(restarted?.pid)
                #expect(await log(stdout, contains: "started \(second)"))
                #expect(ProcessScan.logWriters(of: configuration.logDirectory) == writers, "the same writer")
                await supervisor.stop(configuration.name)
                #expect(await Processes.waitForExit(writers, timeout: .seconds(10)), "the writer ends once the instance stopped")
            }
        }
    }

    /// The instance's output goes through a log writer of its own, not through the agent: the writer outlives the
    /// supervisor, keeps logging, and ends with the instance.
    @Test func logsKeepFlowingWhenTheSupervisorIsGone() async throws {
        try await SupervisorFixture.with { fixture in
            // It prints a line whenever it gets SIGUSR1, so the test can make it log after the supervisor is gone.
            let chatty = try fixture.configuration(
                "chatty", ["sh", "-c", "trap 'echo ping' USR1; echo ready; while :; do sleep 1 & wait; done"])
            let pidBox = PidBox()
            try await fixture.withSupervisor(leaveRunning: true) { supervisor in
                supervisor.start(chatty)
                pidBox.pid = try await waitFor(supervisor, "chatty") { $0.state == .running }?.pid ?? 0
                #expect(await log(chatty.logDirectory + "/stdout.log", contains: "ready"))
            }
            let pid = pidBox.pid
            for round in 1...3 {
                kill(pid, SIGUSR1)
                #expect(await Waiting.file(chatty.logDirectory + "/stdout.log", within: .seconds(10)) {
                    $0.components(separatedBy: "ping").count - 1 >= round
                })
            }
            #expect(ProcessTable.isAlive(pid), "the instance lives on, logging, without its supervisor")
            let writers = ProcessScan.logWriters(of: chatty.logDirectory)
            #expect(writers.count == 1, "\(writers)")
            kill(-pid, SIGKILL)
            #expect(await Processes.waitForExit(writers, timeout: .seconds(10)), "the log writer ends with its instance")
        }
    }
}

final class PidBox: @unchecked Sendable {
    var pid: Int32 = 0
}

@Suite("Supervisor adoption of dead instances", .serialized, .timeLimit(.minutes(5)))
struct SupervisorLeftoverTests {
    @Test func deadLeaderLeftoversAreKilledAndNothingIsAdopted() async throws {
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("orphaned", ["sh", "-c", "sleep 1000 & sleep 1000 & echo started; wait"])
            let pidBox = PidBox()
            try await fixture.withSupervisor(leaveRunning: true) { supervisor in
                supervisor.start(configuration)
                pidBox.pid = try await waitFor(supervisor, "orphaned") { $0.state == .running }?.pid ?? 0
                #expect(await log(configuration.logDirectory + "/stdout.log", contains: "started"))
            }
            let leader = pidBox.pid
            #expect(processes(inGroup: leader).count == 3)
            // The leader dies while no agent runs; its background children live on in the group.
            kill(leader, SIGKILL)
            #expect(await Processes.waitForExit([leader], timeout: .seconds(10)))
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
                #expect(await groupEnds(leader))
            }
        }
    }

    /// A setup step cut short by a dead agent is not adopted (it would be taken for the command): its group is
    /// killed, so the next start runs the step afresh instead of twice at once.
    @Test func aSetupStepLeftByADeadAgentIsKilledNotAdopted() async throws {
        try await SupervisorFixture.with { fixture in
            let step = SetupStep(name: "pip", command: ["sh", "-c", "echo installing; sleep 1000 & wait"])
            let configuration = try fixture.configuration("installer", ["sleep", "1000"], setup: [step])
            let pidBox = PidBox()
            try await fixture.withSupervisor(leaveRunning: true) { supervisor in
                supervisor.start(configuration)
                try await waitFor(supervisor, "installer") { $0.state == .installing }
                #expect(await log(configuration.logDirectory + "/setup.log", contains: "installing"))
                pidBox.pid = try #require(try LocalInstanceRecord.read(from: configuration.stateDirectory)).pid
            }
            let record = try #require(try LocalInstanceRecord.read(from: configuration.stateDirectory))
            #expect(record.setupStep == "pip", "the record names the running setup step")
            #expect(ProcessTable.isAlive(pidBox.pid))
            try await fixture.withSupervisor { supervisor in
                let outcome = supervisor.adopt(stateDirectory: configuration.stateDirectory)
                guard case .gone(_, let reason) = outcome else {
                    Issue.record("a setup step must not be adopted, got \(outcome)")
                    return
                }
                #expect(reason.contains("setup step 'pip'"), "\(reason)")
                #expect(await groupEnds(pidBox.pid))
                #expect(supervisor.status(of: configuration.name) == nil)
            }
        }
    }
}
