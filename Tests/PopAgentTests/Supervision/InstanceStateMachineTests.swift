import Foundation
import Testing

@testable import PopAgent

@Suite("InstanceStateMachine")
struct InstanceStateMachineTests {
    typealias Machine = InstanceStateMachine
    let t0 = Moment(instant: .now, date: Date(timeIntervalSince1970: 1_000_000))

    func parameters(
        setupSteps: Int = 0, health: Machine.Parameters.Health? = nil, stopSignal: StopSignal = .term,
        maximumQuickFailures: Int = 5
    ) -> Machine.Parameters {
        Machine.Parameters(
            setupSteps: setupSteps, health: health, stopSignal: stopSignal, stopTimeout: .seconds(10),
            restart: RestartPolicy(maximumQuickFailures: maximumQuickFailures))
    }

    @Test func startSpawnsAndRunsWithoutHealthCheck() {
        var machine = Machine(parameters: parameters(), at: t0)
        #expect(machine.state == .stopped)
        #expect(machine.start(at: t0) == .spawnCommand)
        #expect(machine.state == .starting)
        #expect(machine.spawned(pid: 42, at: t0) == .none)
        #expect(machine.state == .running)
        #expect(machine.pid == 42)
        #expect(machine.start(at: t0) == .none)
    }

    @Test func quickFailuresBackOffDoublingThenFatal() {
        var machine = Machine(parameters: parameters(maximumQuickFailures: 4), at: t0)
        _ = machine.start(at: t0)
        var now = t0
        var delays: [Duration] = []
        for pid in Int32(1)...4 {
            _ = machine.spawned(pid: pid, at: now)
            now = now.advanced(by: .milliseconds(50))
            let action = machine.processExited(pid: pid, status: .exited(3), at: now)
            if case .scheduleTimer(let delay, let generation) = action {
                delays.append(delay)
                #expect(machine.state == .backoff)
                #expect(machine.timerFired(generation: generation, at: now) == .spawnCommand)
            } else {
                #expect(action == .none)
            }
        }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400)])
        #expect(machine.state == .fatal)
        #expect(machine.lastError == "exited with status 3")
        #expect(machine.restarts == 4)
        // FATAL stays FATAL on start; a deliberate restart starts again.
        #expect(machine.start(at: now) == .none)
        #expect(machine.restart(with: machine.parameters, because: .manual, at: now) == .spawnCommand)
        #expect(machine.restarts == 0)
        #expect(machine.lastError == nil, "the error was about the previous run")
    }

    @Test func factsSayWhatHappenedAndWhyEachStartIsARestart() {
        var machine = Machine(parameters: parameters(maximumQuickFailures: 2), at: t0)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 1, at: t0)
        #expect(machine.takeFacts() == [.started(pid: 1)], "a first start is no restart")
        guard case .scheduleTimer(let delay, let generation) = machine.processExited(pid: 1, status: .exited(3), at: t0) else {
            Issue.record("expected a backoff")
            return
        }
        #expect(machine.takeFacts() == [.exited(pid: 1, .exited(3)), .backoff("exited with status 3", after: delay)])
        _ = machine.timerFired(generation: generation, at: t0)
        _ = machine.spawned(pid: 2, at: t0)
        #expect(machine.takeFacts() == [.restarted(.crash), .started(pid: 2)])
        #expect(machine.lastRestart == .crash)
        // A new configuration: the stop, then the restart and why.
        guard case .signalGroup(2, .term, _, _) = machine.restart(with: parameters(), because: .configChange, at: t0) else {
            Issue.record("expected a stop")
            return
        }
        #expect(machine.takeFacts() == [])
        #expect(machine.processExited(pid: 2, status: .signaled(15), at: t0) == .spawnCommand)
        _ = machine.spawned(pid: 3, at: t0)
        #expect(machine.takeFacts() == [.exited(pid: 2, .signaled(15)), .restarted(.configChange), .started(pid: 3)])
        #expect(machine.lastRestart == .configChange)
        // Stopped on purpose: no restart is pending afterwards.
        _ = machine.stop(at: t0)
        _ = machine.processExited(pid: 3, status: .signaled(15), at: t0)
        #expect(machine.takeFacts() == [.exited(pid: 3, .signaled(15)), .stopped])
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 4, at: t0)
        #expect(machine.takeFacts() == [.started(pid: 4)])
        #expect(machine.lastRestart == .configChange, "the last restart is still the one before")
    }

    @Test func healthFactsOnlyWhenTheAnswerChanges() {
        let health = Machine.Parameters.Health(interval: .milliseconds(100), gracePeriod: .seconds(1))
        var machine = Machine(parameters: parameters(health: health), at: t0)
        _ = machine.start(at: t0)
        guard case .scheduleTimer(_, var generation) = machine.spawned(pid: 1, at: t0) else {
            Issue.record("expected a probe timer")
            return
        }
        _ = machine.takeFacts()
        func probe(_ healthy: Bool) {
            _ = machine.timerFired(generation: generation, at: t0)
            if case .scheduleTimer(_, let next) = machine.probeFinished(generation: generation, healthy: healthy, detail: "d", at: t0) {
                generation = next
            }
        }
        probe(false)
        #expect(machine.takeFacts() == [], "failing before the first pass is no news")
        probe(true)
        probe(true)
        #expect(machine.takeFacts() == [.health(true, "d")])
        probe(false)
        #expect(machine.takeFacts() == [.health(false, "d")])
    }

    @Test func stableUptimeResetsTheFailureCount() {
        var machine = Machine(parameters: parameters(maximumQuickFailures: 2), at: t0)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 1, at: t0)
        var action = machine.processExited(pid: 1, status: .signaled(9), at: t0.advanced(by: .milliseconds(10)))
        guard case .scheduleTimer(_, let generation) = action else {
            Issue.record("expected backoff, got \(action)")
            return
        }
        let later = t0.advanced(by: .seconds(1))
        _ = machine.timerFired(generation: generation, at: later)
        _ = machine.spawned(pid: 2, at: later)
        // Up for 11 s: stable, so this exit is the first quick failure again, not the second.
        action = machine.processExited(pid: 2, status: .exited(1), at: later.advanced(by: .seconds(11)))
        #expect(action == .scheduleTimer(after: .milliseconds(100), generation: generation + 1))
        #expect(machine.state == .backoff)
        #expect(machine.lastError == "exited with status 1")
    }

    @Test func stopSignalsThenKillsAfterTimeout() {
        var machine = Machine(parameters: parameters(stopSignal: .int), at: t0)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 7, at: t0)
        let action = machine.stop(at: t0)
        guard case .signalGroup(7, .int, .seconds(10), let generation) = action else {
            Issue.record("expected a stop signal, got \(action)")
            return
        }
        #expect(machine.state == .stopping)
        #expect(machine.isStopInProgress)
        #expect(machine.timerFired(generation: generation, at: t0) == .killGroup(pid: 7))
        #expect(machine.timerFired(generation: generation, at: t0) == .none)
        #expect(machine.processExited(pid: 7, status: .signaled(9), at: t0) == .none)
        #expect(machine.state == .stopped)
        #expect(machine.lastError == nil)
        #expect(!machine.isStopInProgress)
    }

    @Test func stopWhileSpawningStopsOnceSpawned() {
        var machine = Machine(parameters: parameters(), at: t0)
        _ = machine.start(at: t0)
        #expect(machine.stop(at: t0) == .none)
        #expect(machine.isStopInProgress)
        guard case .signalGroup(9, .term, _, _) = machine.spawned(pid: 9, at: t0) else {
            Issue.record("expected the new process to be stopped")
            return
        }
        _ = machine.processExited(pid: 9, status: .exited(0), at: t0)
        #expect(machine.state == .stopped)
    }

    @Test func staleTimersAreIgnored() {
        var machine = Machine(parameters: parameters(), at: t0)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 1, at: t0)
        guard case .scheduleTimer(_, let generation) = machine.processExited(pid: 1, status: .exited(1), at: t0) else {
            Issue.record("expected backoff")
            return
        }
        #expect(machine.timerFired(generation: generation - 1, at: t0) == .none)
        // A stop during backoff settles at once, and the backoff timer no longer matters.
        #expect(machine.stop(at: t0) == .none)
        #expect(machine.state == .stopped)
        #expect(machine.timerFired(generation: generation, at: t0) == .none)
        #expect(machine.state == .stopped)
    }

    @Test func aStopTimerAfterSIGKILLHasNothingToSend() {
        var machine = Machine(parameters: parameters(stopSignal: .kill), at: t0)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 3, at: t0)
        guard case .signalGroup(3, .kill, _, let generation) = machine.stop(at: t0) else {
            Issue.record("expected SIGKILL as the stop signal")
            return
        }
        #expect(machine.timerFired(generation: generation, at: t0) == .none)
        #expect(machine.state == .stopping)
        #expect(machine.processExited(pid: 3, status: .signaled(9), at: t0) == .none)
        #expect(machine.state == .stopped)
    }

    @Test func healthCheckGatesRunningAndRestartsAfterGrace() {
        let health = Machine.Parameters.Health(interval: .seconds(1), gracePeriod: .seconds(2))
        var machine = Machine(parameters: parameters(health: health), at: t0)
        _ = machine.start(at: t0)
        guard case .scheduleTimer(.zero, let generation) = machine.spawned(pid: 5, at: t0) else {
            Issue.record("expected an immediate first probe")
            return
        }
        #expect(machine.state == .starting)
        #expect(machine.timerFired(generation: generation, at: t0) == .probe(generation: generation))
        // Unhealthy within grace: probe again, sooner than the interval while starting.
        guard case .scheduleTimer(let delay, let next) = machine.probeFinished(generation: generation, healthy: false, detail: "refused", at: t0)
        else {
            Issue.record("expected another probe")
            return
        }
        #expect(delay == .milliseconds(10))
        #expect(machine.timerFired(generation: next, at: t0) == .probe(generation: next))
        #expect(machine.probeFinished(generation: next, healthy: true, detail: "ok", at: t0.advanced(by: .seconds(1)))
            == .scheduleTimer(after: .seconds(1), generation: next + 1))
        #expect(machine.state == .running)
        // Unhealthy for longer than the grace period since the last healthy probe: stop, then back off.
        let late = t0.advanced(by: .seconds(4))
        #expect(machine.timerFired(generation: next + 1, at: late) == .probe(generation: next + 1))
        guard case .signalGroup(5, .term, _, _) = machine.probeFinished(generation: next + 1, healthy: false, detail: "refused", at: late) else {
            Issue.record("expected a restart")
            return
        }
        guard case .scheduleTimer = machine.processExited(pid: 5, status: .signaled(15), at: late) else {
            Issue.record("expected backoff")
            return
        }
        #expect(machine.state == .backoff)
        #expect(machine.lastError == "unhealthy for longer than the grace period: refused")
    }

    /// A probe still under way when its process is stopped reports on a process that is gone: its result must not
    /// count for the next one.
    @Test func aProbeOfAStoppedProcessDoesNotCountForTheNext() {
        let health = Machine.Parameters.Health(interval: .seconds(1), gracePeriod: .seconds(30))
        var machine = Machine(parameters: parameters(health: health), at: t0)
        _ = machine.start(at: t0)
        guard case .scheduleTimer(_, let generation) = machine.spawned(pid: 5, at: t0) else {
            Issue.record("expected a first probe")
            return
        }
        #expect(machine.timerFired(generation: generation, at: t0) == .probe(generation: generation))
        // A deliberate restart while that probe is under way.
        guard case .signalGroup(5, .term, _, _) = machine.restart(with: parameters(health: health), because: .manual, at: t0) else {
            Issue.record("expected the process to be stopped")
            return
        }
        #expect(machine.probeFinished(generation: generation, healthy: true, detail: "ok", at: t0) == .none)
        #expect(machine.state == .stopping)
        #expect(machine.processExited(pid: 5, status: .signaled(15), at: t0) == .spawnCommand)
        _ = machine.spawned(pid: 6, at: t0)
        #expect(machine.probeFinished(generation: generation, healthy: true, detail: "ok", at: t0) == .none)
        #expect(machine.state == .starting, "the new process is not healthy because the old one was")
    }

    /// An event the phase cannot receive is a supervisor bug: with traps off (as in a release build) it changes
    /// nothing and is reported for the supervisor to log.
    @Test func eventsAPhaseCannotReceiveAreReportedNotIgnored() {
        InstanceStateMachine.$trapsOnImpossibleEvents.withValue(false) {
            var machine = Machine(parameters: parameters(), at: t0)
            #expect(machine.spawned(pid: 1, at: t0) == .impossible(event: "spawned(pid: 1)", phase: "stopped"))
            #expect(machine.spawnFailed("x", at: t0) == .impossible(event: "spawnFailed", phase: "stopped"))
            #expect(machine.processExited(pid: 1, status: .exited(0), at: t0) == .impossible(event: "processExited(pid: 1)", phase: "stopped"))
            #expect(machine.state == .stopped)
            _ = machine.start(at: t0)
            _ = machine.spawned(pid: 2, at: t0)
            // Another process's exit, and a skipped setup step of an instance that has none running.
            guard case .impossible = machine.processExited(pid: 99, status: .exited(1), at: t0) else {
                Issue.record("a foreign exit must be reported")
                return
            }
            guard case .impossible = machine.setupStepSucceeded(step: 0, at: t0) else {
                Issue.record("a setup step outside installing must be reported")
                return
            }
            #expect(machine.state == .running)
            #expect(machine.pid == 2)
            #expect(machine.restarts == 0)
        }
    }

    /// In a debug build (the tests' own) such an event stops the program where it happens.
    @Test func anImpossibleEventStopsADebugBuild() async {
        await #expect(processExitsWith: .failure) {
            var machine = InstanceStateMachine(
                parameters: .init(setupSteps: 0, health: nil, stopSignal: .term, stopTimeout: .seconds(1), restart: .init()),
                at: .now())
            _ = machine.processExited(pid: 1, status: .exited(0), at: .now())
        }
    }

    @Test func setupStepsRunInOrderAndAFailureNamesTheStep() {
        var machine = Machine(parameters: parameters(setupSteps: 2), at: t0)
        #expect(machine.start(at: t0) == .runSetupStep(index: 0))
        #expect(machine.state == .installing)
        #expect(machine.setupStepSucceeded(step: 0, at: t0) == .runSetupStep(index: 1))
        _ = machine.spawned(pid: 3, at: t0)
        #expect(machine.state == .installing)
        #expect(machine.pid == 3)
        guard case .scheduleTimer = machine.processExited(pid: 3, status: .exited(4), stepName: "pip", at: t0) else {
            Issue.record("expected backoff")
            return
        }
        #expect(machine.lastError == "setup step 'pip' exited with status 4")
        var ok = Machine(parameters: parameters(setupSteps: 1), at: t0)
        _ = ok.start(at: t0)
        _ = ok.spawned(pid: 4, at: t0)
        #expect(ok.processExited(pid: 4, status: .exited(0), at: t0) == .spawnCommand)
        #expect(ok.state == .starting)
    }

    @Test func configurationChangeStopsWithTheOldSignalThenStarts() {
        var machine = Machine(parameters: parameters(stopSignal: .quit), at: t0)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 11, at: t0)
        guard case .signalGroup(11, .quit, _, _) = machine.restart(with: parameters(stopSignal: .hup), because: .configChange, at: t0) else {
            Issue.record("expected the old stop signal")
            return
        }
        #expect(machine.processExited(pid: 11, status: .signaled(3), at: t0) == .spawnCommand)
        _ = machine.spawned(pid: 12, at: t0)
        guard case .signalGroup(12, .hup, _, _) = machine.stop(at: t0) else {
            Issue.record("expected the new stop signal")
            return
        }
    }

    @Test func removeForgetsAfterStopping() {
        var machine = Machine(parameters: parameters(), at: t0)
        #expect(machine.remove(at: t0) == .forget)
        _ = machine.start(at: t0)
        _ = machine.spawned(pid: 1, at: t0)
        _ = machine.remove(at: t0)
        #expect(machine.processExited(pid: 1, status: .signaled(15), at: t0) == .forget)
    }

    /// An adopted instance with a health check is running only once a probe says so (the previous agent may have died
    /// before the first one); its grace period counts from the adoption, not from the process's start.
    @Test func anAdoptedInstanceWithAHealthCheckIsProbedAtOnce() {
        let health = Machine.Parameters.Health(interval: .seconds(1), gracePeriod: .seconds(2))
        var machine = Machine(parameters: parameters(health: health), at: t0)
        let adoptedAt = t0.advanced(by: .seconds(3600))
        guard case .scheduleTimer(.zero, let generation) = machine.adopted(pid: 8, started: t0, restarts: 0, at: adoptedAt)
        else {
            Issue.record("expected an immediate probe")
            return
        }
        #expect(machine.state == .starting)
        #expect(machine.started == t0.date, "the process's own start is kept")
        #expect(machine.timerFired(generation: generation, at: adoptedAt) == .probe(generation: generation))
        // Unhealthy an hour after the process started, but within the grace period since the adoption: probe again.
        guard case .scheduleTimer = machine.probeFinished(generation: generation, healthy: false, detail: "refused", at: adoptedAt)
        else {
            Issue.record("expected another probe within the grace period")
            return
        }
        #expect(machine.state == .starting)
    }

    @Test func adoptedInstanceRunsWithoutRestart() {
        var machine = Machine(parameters: parameters(), at: t0)
        #expect(machine.adopted(pid: 77, started: t0, restarts: 2, at: t0.advanced(by: .seconds(5))) == .none)
        #expect(machine.state == .running)
        #expect(machine.pid == 77)
        #expect(machine.restarts == 2)
        #expect(machine.start(at: t0) == .none)
    }
}

@Suite("Supervision values")
struct SupervisionValueTests {
    @Test func backoffDoublesToTheCap() {
        let policy = RestartPolicy(initialBackoffMilliseconds: 100, maximumBackoffMilliseconds: 30_000)
        #expect(policy.backoff(afterFailures: 1) == .milliseconds(100))
        #expect(policy.backoff(afterFailures: 4) == .milliseconds(800))
        #expect(policy.backoff(afterFailures: 20) == .milliseconds(30_000))
    }

    @Test func stopSignalNames() throws {
        #expect(try StopSignal(name: "SIGTERM") == .term)
        #expect(try StopSignal(name: "usr2") == .usr2)
        #expect(throws: SupervisorError.self) { try StopSignal(name: "STOP") }
    }

    @Test func healthCheckURLsAndStatusLines() throws {
        #expect(try HealthProbe.parseURL("http://localhost:8080/ok?x=1") == .http(host: "127.0.0.1", port: 8080, path: "/ok?x=1"))
        #expect(try HealthProbe.parseURL("http://127.0.0.1") == .http(host: "127.0.0.1", port: 80, path: "/"))
        #expect(throws: SupervisorError.self) { try HealthProbe.parseURL("http://example.com/") }
        #expect(throws: SupervisorError.self) { try HealthProbe.parseURL("https://127.0.0.1/") }
        #expect(HealthProbe.statusCode(ofResponse: Array("HTTP/1.0 302 Found\r\n".utf8)) == 302)
        #expect(HealthProbe.statusCode(ofResponse: Array("SSH-2.0-OpenSSH\r\n".utf8)) == nil)
    }

    @Test func procStatParsingCountsFieldsFromTheLastParenthesis() {
        let line = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200"
        let stat = ProcessTable.parseStat(Array(line.utf8))
        #expect(stat == ProcessStat(state: UInt8(ascii: "S"), parent: 1, processGroup: 1234, session: 1234, startTime: 987654))
    }

    @Test func exitStatusDescriptions() {
        #expect(ExitStatus.exited(3).description == "exited with status 3")
        #expect(ExitStatus.signaled(9).description == "killed by signal 9 (SIGKILL)")
        #expect(ExitStatus.unknown.description == "exited (status unknown, adopted)")
    }

    @Test func timerHeapPopsInDeadlineOrder() {
        var heap = TimerHeap()
        let base = ContinuousClock.now
        for (offset, token) in [(5, 5), (1, 1), (3, 3), (2, 2), (4, 4)] {
            heap.insert(deadline: base.advanced(by: .milliseconds(offset)), token: UInt64(token))
        }
        #expect(heap.popExpired(now: base.advanced(by: .milliseconds(3))) == [1, 2, 3])
        #expect(heap.count == 2)
        #expect(heap.nextDeadline == base.advanced(by: .milliseconds(4)))
    }
}

@Suite("InstanceStateMachine ordering")
struct InstanceStateMachineOrderingTests {
    @Test func startDuringRemovalKeepsTheInstance() {
        let now = Moment.now()
        var machine = InstanceStateMachine(
            parameters: .init(setupSteps: 0, health: nil, stopSignal: .term, stopTimeout: .seconds(1), restart: .init()),
            at: now)
        _ = machine.start(at: now)
        _ = machine.spawned(pid: 1, at: now)
        _ = machine.remove(at: now)
        #expect(machine.start(at: now) == .none)
        #expect(machine.processExited(pid: 1, status: .signaled(15), at: now) == .spawnCommand)
    }
}
