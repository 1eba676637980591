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
        var unwatchFolder: Int32?
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
        if action == .forget {
            state.instances[name] = nil
            if let watch = entry.logWatch {
                state.logWatches[watch] = nil
                outcome.unwatchFolder = watch
            }
            for subscriber in state.subscribers.values { subscriber.yield(.removed(name)) }
        } else {
            state.instances[name] = entry
        }
        return outcome
    }

    /// Carries out an outcome once the lock is released: logs, wakes waiters, keeps the local record, acts.
    func finish(_ outcome: Outcome?, name: ServiceName) {
        guard let outcome else { return }
        if let status = outcome.changed {
            var metadata: Logger.Metadata = ["service": "\(name)", "state": "\(status.state.rawValue)"]
            if let pid = status.pid { metadata["pid"] = "\(pid)" }
            if let error = status.lastError, status.state == .backoff || status.state == .fatal {
                metadata["error"] = "\(error)"
            }
            logger.info("instance state changed", metadata: metadata)
            if status.state == .stopped || status.state == .fatal {
                LocalInstanceRecord.remove(from: outcome.configuration.stateDirectory)
            }
        }
        if let watch = outcome.unwatchFolder { loop.unwatchFolder(watch) }
        for waiter in outcome.waiters { waiter.resume() }
        perform(outcome.action, name: name, configuration: outcome.configuration)
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
            schedule(.timer(name, generation: generation), after: killAfter)
        case .killGroup(let pid):
            logger.warning(
                "instance did not stop within its stop timeout; killing its process group",
                metadata: ["service": "\(name)", "pid": "\(pid)"])
            kill(-pid, SIGKILL)
        case .probe:
            startProbe(name, configuration)
        case .forget:
            LocalInstanceRecord.remove(from: configuration.stateDirectory)
            logger.info("instance removed", metadata: ["service": "\(name)"])
        }
    }

    /// Spawns the command or a setup step, then tells the machine (and only then watches the process, so its exit
    /// can never reach the machine before its start).
    private func launch(_ name: ServiceName, _ configuration: InstanceConfiguration, arguments: [String], stepName: String?) {
        let pid: Int32
        let handle: Int32
        do {
            try ProcessSpawner.makeDirectory(configuration.workingDirectory)
            try ProcessSpawner.makeDirectory(configuration.logDirectory)
            let logs = configuration.logDirectory
            let request = SpawnRequest(
                arguments: arguments, environment: configuration.environment,
                workingDirectory: configuration.workingDirectory,
                standardOutput: logs + (stepName == nil ? "/stdout.log" : "/setup.log"),
                standardError: stepName == nil ? logs + "/stderr.log" : nil)
            pid = try ChildReaper.spawnTracked { () throws(SupervisorError) in try ProcessSpawner.spawn(request) }
            do {
                handle = try ProcessTable.openHandle(pid)
            } catch {
                // Without a handle the exit could not be seen: take the process down again, the reaper collects it.
                kill(-pid, SIGKILL)
                ChildReaper.untrack(pid)
                throw error
            }
        } catch {
            logger.error("could not start instance", metadata: ["service": "\(name)", "error": "\(error)"])
            let message = error.supervisorMessage
            feed(name) { machine, now in machine.spawnFailed(message, at: now) }
            return
        }
        let startTime = ProcessTable.stat(pid)?.startTime
        let token = makeToken()
        let watched = WatchedProcess(pid: pid, handle: handle, token: token, isChild: true, stepName: stepName)
        state.withLock { $0.registrations[token] = .process(name, pid: pid) }
        let now = Moment.now()
        let outcome = mutate(name, now: now) { entry in
            entry.process = watched
            if stepName == nil { entry.processSignature = configuration.signature }
            return entry.machine.spawned(pid: pid, at: now)
        }
        guard outcome != nil else {
            // Forgotten meanwhile (cannot happen while spawning, but never leave a process unwatched).
            kill(-pid, SIGKILL)
            close(handle)
            ChildReaper.untrack(pid)
            return
        }
        loop.add(handle, mask: ProcessEventLoop.readable, token: token)
        watchLogs(name, configuration)
        if stepName == nil, let startTime {
            let record = LocalInstanceRecord(
                configuration: configuration, pid: pid, processStartTime: startTime, processGroup: pid,
                started: now.date, restarts: outcome?.changed?.restarts ?? 0)
            do { try record.write() } catch {
                logger.error("could not write the instance record", metadata: ["service": "\(name)", "error": "\(error)"])
            }
        }
        finish(outcome, name: name)
    }

    /// Reports `registration` from the event loop after `delay`.
    func schedule(_ registration: Registration, after delay: Duration) {
        let token = makeToken()
        state.withLock { $0.registrations[token] = registration }
        loop.schedule(after: delay, token: token)
    }

    /// Watches the instance's log folder for growth (once), and checks its sizes now.
    func watchLogs(_ name: ServiceName, _ configuration: InstanceConfiguration) {
        state.withLock { state in
            guard var entry = state.instances[name], entry.logWatch == nil,
                let watch = loop.watchFolder(configuration.logDirectory)
            else { return }
            entry.logWatch = watch
            state.instances[name] = entry
            state.logWatches[watch] = name
        }
        LogRotator.rotateIfNeeded(in: configuration.logDirectory, rotation: configuration.logRotation)
    }
}

extension Error {
    /// The message of a ``SupervisorError``, or the error's description.
    var supervisorMessage: String {
        (self as? SupervisorError)?.message ?? "\(self)"
    }
}
