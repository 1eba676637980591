#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import PopState

extension Supervisor {
    /// The result of feeding one event to an instance's state machine: what to do once the lock is released.
    struct Outcome: Sendable {
        var action: InstanceStateMachine.Action
        var configuration: InstanceConfiguration
        /// The new status, when it changed.
        var changed: InstanceStatus?
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// The log pipes of an instance that stopped for good, to close.
        var closeLogs: LogWriter.Pipes?
        /// What happened, for the lifecycle journal, with the signature of the process it concerns.
        var facts: [InstanceStateMachine.Fact] = []
        var signature: ConfigSignature?
    }

    /// Feeds an event to `name`'s machine under the lock (creating the instance from `create` if it is new), and
    /// publishes the status if it changed. Returns `nil` when the instance is not supervised.
    func mutate(
        _ name: ServiceName, now: Moment, create: InstanceConfiguration? = nil,
        _ body: (inout Entry) -> InstanceStateMachine.Action
    ) -> Outcome? {
        state.withLock { state -> Outcome? in
            var entry: Entry
            if let existing = state.instances[name] {
                entry = existing
            } else if let create {
                entry = Entry(
                    configuration: create, machine: InstanceStateMachine(parameters: create.machineParameters, at: now))
            } else {
                return nil
            }
            let action = body(&entry)
            return Self.commit(&state, name, entry, action)
        }
    }

    /// Feeds an event and waits until no stop is in progress for the instance (or it was forgotten).
    func request(_ name: ServiceName, _ body: @escaping @Sendable (inout Entry, Moment) -> InstanceStateMachine.Action) async {
        let now = Moment.now()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let outcome = state.withLock { state -> Outcome? in
                guard var entry = state.instances[name] else { return nil }
                let action = body(&entry, now)
                entry.stopWaiters.append(continuation)
                return Self.commit(&state, name, entry, action)
            }
            guard let outcome else {
                continuation.resume()
                return
            }
            finish(outcome, name: name)
        }
    }

    /// Stores `entry` back (or drops it on `.forget`), publishing what changed. Runs under the lock.
    static func commit(
        _ state: inout State, _ name: ServiceName, _ entry: Entry, _ action: InstanceStateMachine.Action
    ) -> Outcome {
        var entry = entry
        var outcome = Outcome(action: action, configuration: entry.configuration)
        outcome.facts = entry.machine.takeFacts()
        outcome.signature = entry.processSignature ?? entry.configuration.signature
        let status = status(name, entry)
        if status != entry.lastStatus {
            entry.lastStatus = status
            outcome.changed = status
            for subscriber in state.subscribers.values { subscriber.yield(.changed(status)) }
        }
        if !entry.machine.isStopInProgress || action == .forget {
            outcome.waiters = entry.stopWaiters
            entry.stopWaiters = []
        }
        if entry.machine.isSettled || action == .forget {
            outcome.closeLogs = entry.logOutput?.pipes
            entry.logOutput = nil
        }
        if action == .forget {
            state.instances[name] = nil
            for subscriber in state.subscribers.values { subscriber.yield(.removed(name)) }
        } else {
            state.instances[name] = entry
        }
        return outcome
    }

    /// Carries out an outcome once the lock is released: logs, wakes waiters, keeps the local record, acts.
    func finish(_ outcome: Outcome?, name: ServiceName) {
        guard let outcome else { return }
        for fact in outcome.facts {
            options.lifecycle(Self.event(fact, name: name, signature: outcome.signature))
        }
        if let status = outcome.changed {
            var metadata: Logger.Metadata = ["service": "\(name)", "state": "\(status.state.rawValue)"]
            if let pid = status.pid { metadata["pid"] = "\(pid)" }
            if let error = status.lastError, status.state == .backoff || status.state == .fatal {
                metadata["error"] = "\(error)"
            }
            logger.info("instance state changed", metadata: metadata)
            if status.state == .stopped || status.state == .fatal {
                // The process has exited and its group was killed (``processExited``): only now does the record go.
                LocalInstanceRecord.remove(from: outcome.configuration.stateDirectory)
                CrashPoint.reach(.recordRemoved)
            }
        }
        outcome.closeLogs?.close()
        for waiter in outcome.waiters { waiter.resume() }
        perform(outcome.action, name: name, configuration: outcome.configuration)
    }

    /// The lifecycle event of a fact of `name`'s instance.
    static func event(_ fact: InstanceStateMachine.Fact, name: ServiceName, signature: ConfigSignature?) -> LifecycleEvent {
        let service = name.rawValue
        switch fact {
        case .started(let pid):
            return LifecycleEvent(.started, service: service, pid: pid, signature: signature?.hex)
        case .exited(let pid, .exited(let code)):
            return LifecycleEvent(.exited, service: service, pid: pid, exitCode: code)
        case .exited(let pid, .signaled(let signal)):
            return LifecycleEvent(.exited, service: service, pid: pid, signal: signal)
        case .exited(let pid, .unknown):
            return LifecycleEvent(.exited, service: service, pid: pid, detail: "status unknown (adopted)")
        case .restarted(let reason):
            return LifecycleEvent(.restarted, service: service, reason: reason)
        case .backoff(let message, let delay):
            let milliseconds = Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
            return LifecycleEvent(.backoff, service: service, delayMilliseconds: milliseconds, detail: message)
        case .fatal(let message):
            return LifecycleEvent(.fatal, service: service, detail: message)
        case .health(let healthy, let detail):
            return LifecycleEvent(.health, service: service, healthy: healthy, detail: detail)
        case .stopped:
            return LifecycleEvent(.stopped, service: service)
        }
    }

    /// Feeds an event that needs no waiting, and carries out the outcome.
    func feed(_ name: ServiceName, _ body: (inout InstanceStateMachine, Moment) -> InstanceStateMachine.Action) {
        let now = Moment.now()
        finish(mutate(name, now: now) { entry in body(&entry.machine, now) }, name: name)
    }

    /// The one place that turns a machine's decision into system calls.
    func perform(_ action: InstanceStateMachine.Action, name: ServiceName, configuration: InstanceConfiguration) {
        switch action {
        case .none:
            return
        case .runSetupStep(let index):
            guard configuration.setup.indices.contains(index) else {
                feed(name) { machine, now in machine.spawnFailed("setup step \(index + 1) does not exist", at: now) }
                return
            }
            let step = configuration.setup[index]
            if let creates = step.creates {
                let path = creates.hasPrefix("/") ? creates : configuration.workingDirectory + "/" + creates
                if access(path, F_OK) == 0 {
                    logger.info(
                        "setup step already done; skipping",
                        metadata: ["service": "\(name)", "step": "\(step.name)", "creates": "\(path)"])
                    feed(name) { machine, now in machine.setupStepSucceeded(step: index, at: now) }
                    return
                }
            }
            logger.info("running setup step", metadata: ["service": "\(name)", "step": "\(step.name)"])
            launch(name, configuration, arguments: step.command, stepName: step.name)
        case .spawnCommand:
            launch(name, configuration, arguments: configuration.command, stepName: nil)
        case .scheduleTimer(let delay, let generation):
            schedule(.timer(name, generation: generation), after: delay)
        case .signalGroup(let pid, let signal, let killAfter, let generation):
            logger.info(
                "stopping instance", metadata: ["service": "\(name)", "pid": "\(pid)", "signal": "\(signal.rawValue)"])
            kill(-pid, signal.number)
            CrashPoint.reach(.stopSignalled)
            schedule(.timer(name, generation: generation), after: killAfter)
        case .killGroup(let pid):
            logger.warning(
                "instance did not stop within its stop timeout; killing its process group",
                metadata: ["service": "\(name)", "pid": "\(pid)"])
            kill(-pid, SIGKILL)
        case .probe(let generation):
            startProbe(name, configuration, generation: generation)
        case .forget:
            LocalInstanceRecord.remove(from: configuration.stateDirectory)
            CrashPoint.reach(.recordRemoved)
            logger.info("instance removed", metadata: ["service": "\(name)"])
        case .impossible(let event, let phase):
            logger.error(
                "the instance's state machine got an event its state cannot receive; ignored",
                metadata: ["service": "\(name)", "event": "\(event)", "phase": "\(phase)"])
        }
    }

    /// Spawns the command or a setup step, then tells the machine (and only then watches the process, so its exit
    /// can never reach the machine before its start).
    ///
    /// The process is created waiting at a gate; the instance record naming it is written before the gate opens and
    /// its program runs. An agent that dies at any instant in between leaves either a record of a process that never
    /// ran its program (it exits when its gate's other end closes with the agent) or a record of the running
    /// process: never a process that no record names.
    private func launch(_ name: ServiceName, _ configuration: InstanceConfiguration, arguments: [String], stepName: String?) {
        let child: GatedChild
        let prepared: PreparedLaunch
        do {
            prepared = try prepare(name, configuration)
            let executable: String
            if stepName == nil, let known = prepared.executable {
                executable = known
            } else {
                executable = try ProcessSpawner.resolveExecutable(
                    arguments.first ?? "", environment: configuration.environment,
                    workingDirectory: configuration.workingDirectory)
                if stepName == nil { state.withLock { $0.instances[name]?.prepared?.executable = executable } }
            }
            let (pipes, keep) = try logPipes(name, configuration, setupStep: stepName != nil)
            // The child has its copies once spawned; the log writer ends when the last of them is closed.
            defer { if !keep { pipes.close() } }
            let request = SpawnRequest(
                executable: executable, arguments: arguments, environment: configuration.environment,
                workingDirectory: configuration.workingDirectory, standardOutput: pipes.output,
                standardError: pipes.errorOutput)
            child = try ChildReaper.spawnTracked { () throws(SupervisorError) in try ProcessSpawner.spawn(request) }
        } catch {
            spawnFailed(name, error)
            return
        }
        let pid = child.pid
        let handle = child.handle
        CrashPoint.reach(.spawnCloned)
        let now = Moment.now()
        do {
            guard let startTime = ProcessTable.stat(pid)?.startTime else {
                throw SupervisorError.system("read the start time of process \(pid)")
            }
            let (restarts, lastRestart) = state.withLock { state in
                (state.instances[name]?.machine.restarts ?? 0, state.instances[name]?.machine.reasonOfNextStart)
            }
            try LocalInstanceRecord(
                configuration: configuration, pid: pid, processStartTime: startTime, processGroup: pid,
                started: now.date, restarts: restarts, setupStep: stepName, lastRestart: lastRestart
            ).write()
        } catch {
            // Without a record the process must not run: nothing would find it if this agent died.
            child.abort()
            discard(pid: pid, handle: handle)
            spawnFailed(name, SupervisorError(.record, "Could not record the process before starting it: \(error.supervisorMessage)"))
            return
        }
        CrashPoint.reach(.spawnRecorded)
        do {
            try child.release()
        } catch {
            LocalInstanceRecord.remove(from: configuration.stateDirectory)
            discard(pid: pid, handle: handle)
            spawnFailed(name, error)
            return
        }
        CrashPoint.reach(.spawnReleased)
        let token = makeToken()
        let watched = WatchedProcess(pid: pid, handle: handle, token: token, isChild: true, stepName: stepName)
        state.withLock { $0.registrations[token] = .process(name, pid: pid) }
        let outcome = mutate(name, now: now) { entry in
            entry.process = watched
            if stepName == nil { entry.processSignature = configuration.signature }
            return entry.machine.spawned(pid: pid, at: now)
        }
        guard outcome != nil else {
            // Forgotten meanwhile (cannot happen while spawning, but never leave a process unwatched).
            kill(-pid, SIGKILL)
            _ = ProcessTable.reapWhenExited(handle: handle)
            close(handle)
            ChildReaper.untrack(pid)
            LocalInstanceRecord.remove(from: configuration.stateDirectory)
            return
        }
        loop.add(handle, mask: ProcessEventLoop.readable, token: token)
        finish(outcome, name: name)
    }

    /// The pipes a process writes its output to: for the command, the ones its previous process wrote to while their
    /// log writer reads on (kept, `true`), else new ones with a log writer of their own.
    private func logPipes(
        _ name: ServiceName, _ configuration: InstanceConfiguration, setupStep: Bool
    ) throws(SupervisorError) -> (LogWriter.Pipes, keep: Bool) {
        if setupStep {
            return (try LogWriter.start(folder: configuration.logDirectory, files: ["setup.log"], rotation: configuration.logRotation), false)
        }
        let kept = state.withLock { $0.instances[name]?.logOutput }
        if let kept, kept.folder == configuration.logDirectory, kept.rotation == configuration.logRotation,
            kept.pipes.readerIsAlive
        {
            return (kept.pipes, true)
        }
        let pipes = try LogWriter.start(
            folder: configuration.logDirectory, files: ["stdout.log", "stderr.log"], rotation: configuration.logRotation)
        let (stored, replaced) = state.withLock { state -> (Bool, LogWriter.Pipes?) in
            guard state.instances[name] != nil else { return (false, nil) }
            let replaced = state.instances[name]!.logOutput?.pipes
            state.instances[name]!.logOutput = LogWriter.Kept(
                folder: configuration.logDirectory, rotation: configuration.logRotation, pipes: pipes)
            return (true, replaced)
        }
        replaced?.close()
        return (pipes, stored)
    }

    /// The configuration's ``PreparedLaunch``: the one kept from its last start, or a new one (which makes the
    /// folders).
    private func prepare(_ name: ServiceName, _ configuration: InstanceConfiguration) throws(SupervisorError) -> PreparedLaunch {
        let basis = PreparedLaunch.Basis(configuration)
        if let kept = state.withLock({ $0.instances[name]?.prepared }), kept.basis == basis {
            return kept
        }
        try ProcessSpawner.makeDirectory(configuration.workingDirectory)
        try ProcessSpawner.makeDirectory(configuration.logDirectory)
        let prepared = PreparedLaunch(basis: basis, executable: nil)
        state.withLock { $0.instances[name]?.prepared = prepared }
        return prepared
    }

    /// Reaps a child that exited without running its program, and lets go of it.
    private func discard(pid: Int32, handle: Int32) {
        _ = ProcessTable.reapWhenExited(handle: handle)
        close(handle)
        ChildReaper.untrack(pid)
    }

    private func spawnFailed(_ name: ServiceName, _ error: any Error) {
        logger.error("could not start instance", metadata: ["service": "\(name)", "error": "\(error)"])
        // Its folders or its program may have gone: look again at the next start.
        state.withLock { $0.instances[name]?.prepared = nil }
        let message = error.supervisorMessage
        feed(name) { machine, now in machine.spawnFailed(message, at: now) }
    }

    /// Reports `registration` from the event loop after `delay`.
    func schedule(_ registration: Registration, after delay: Duration) {
        let token = makeToken()
        state.withLock { $0.registrations[token] = registration }
        loop.schedule(after: delay, token: token)
    }
}

extension Error {
    /// The message of a ``SupervisorError``, or the error's description.
    var supervisorMessage: String {
        (self as? SupervisorError)?.message ?? "\(self)"
    }
}
