import Foundation
import PopState

/// `pop run` on this machine: which requests to answer and when, their results, and the packages they record.
extension AgentStateMachine {
    /// The task requests of the pass are read: answer those for this machine that have no answer from it yet, each
    /// when its turn comes (``TaskGate``) and its instance is not installing. The pass ends here.
    mutating func tasksRead(_ views: [TaskKey: TaskView], at now: Date) -> [AgentAction] {
        guard case .registered(var active) = session, case .examiningTasks(let changes) = active.pass else {
            return unexpected("tasksRead")
        }
        session = .modifying
        var actions: [AgentAction] = []
        for key in views.keys.sorted() {
            actions += examine(key, views[key]!, at: now)
        }
        active.pass = .idle
        actions += followTaskPeers(changes, in: &active)
        session = .registered(active)
        return actions + proceed()
    }

    /// Only while a request waits for other machines' answers does an agent follow a service's task list (its
    /// assignment announces new requests): the watches of services with no waiting request go, and those of services
    /// with one are set, after which the waiting requests are looked at again.
    func followTaskPeers(_ changes: PendingChanges, in active: inout ActiveSession) -> [AgentAction] {
        guard !active.followsWholeNamespace else { return [] }
        var waiting: Set<TaskKey> = []
        for (service, entry) in services {
            for (id, progress) in entry.tasks where progress == .waiting {
                waiting.insert(TaskKey(service: service, id: id))
            }
        }
        let wanted = Set(waiting.map { WatchKey.subtree(paths.tasks($0.service)) })
        var actions: [AgentAction] = []
        let dropped = active.watches.filter { $0.subtree && $0.path.hasSuffix("/tasks") && !wanted.contains($0) }
        if !dropped.isEmpty {
            active.watches.subtract(dropped)
            actions.append(.dropWatches(dropped))
        }
        let adding = wanted.subtracting(active.watches)
        if !adding.isEmpty {
            let followed = Set(adding.map(\.path))
            active.pass = .watchingTaskPeers(changes, adding: adding)
            actions.append(.addWatches(adding, purpose: .taskPeers(waiting.filter { followed.contains(paths.tasks($0.service)) })))
        }
        return actions
    }

    /// The decision about one request.
    mutating func examine(_ key: TaskKey, _ view: TaskView, at now: Date) -> [AgentAction] {
        let request: TaskRequest
        let results: [MachineID: TaskResult.State]
        switch view {
        case .missing:
            setProgress(.done, of: key)
            return []
        case .malformed(let message):
            setProgress(.done, of: key)
            return [.note(.malformedTaskRequest(key, message))]
        case .request(let read, let readResults):
            request = read
            results = readResults
        }
        guard request.machines.contains(machine),
            now <= request.created.addingTimeInterval(Double(request.timeoutMilliseconds) / 1000)
        else {
            // Not for this machine, or the requester has stopped waiting.
            setProgress(.done, of: key)
            return []
        }
        let running = services[key.service]?.tasks[key.id] == .running
        if let own = results[machine] {
            if own == .running, !running {
                // A previous agent started it and did not finish: say so rather than run it twice.
                outbox.results[key] = TaskResult(
                    machine: machine, state: .failed, started: now, finished: now,
                    error: "The agent restarted while the task ran; its outcome is unknown.")
            }
            if !running { setProgress(.done, of: key) }
            return []
        }
        switch TaskGate(request).decision(for: machine, results: results) {
        case .notAsked:
            setProgress(.done, of: key)
            return []
        case .wait(let unfinished):
            setProgress(.waiting, of: key)
            return [.note(.taskWaits(key, unfinishedBefore: unfinished))]
        case .start:
            if services[key.service]?.supervision?.status?.state == .installing {
                setProgress(.waiting, of: key)
                return []
            }
            setProgress(.running, of: key)
            return [.runTask(TaskLaunch(key: key, request: request, service: services[key.service]?.placed))]
        }
    }

    /// A task started: write its `running` result.
    mutating func taskStarted(_ key: TaskKey, _ result: TaskResult) -> [AgentAction] {
        guard services[key.service]?.tasks[key.id] == .running else { return unexpected("taskStarted(\(key))") }
        outbox.results[key] = result
        return proceed()
    }

    /// A task finished: write its result.
    mutating func taskFinished(_ key: TaskKey, _ result: TaskResult) -> [AgentAction] {
        guard services[key.service]?.tasks[key.id] == .running else { return unexpected("taskFinished(\(key))") }
        outbox.results[key] = result
        setProgress(.done, of: key)
        return proceed()
    }

    /// A task installed packages: record them with the service (in this session, or the next one), then write its
    /// result.
    mutating func packagesInstalled(_ key: TaskKey, _ recording: PackageRecording) -> [AgentAction] {
        guard services[key.service]?.tasks[key.id] == .running else {
            return unexpected("packagesInstalled(\(key))")
        }
        outbox.recordings[key] = recording
        return proceed()
    }

    /// The packages are recorded: mark the environment complete for them and write the task's result.
    mutating func packagesRecorded(_ key: TaskKey, _ packages: [String]) -> [AgentAction] {
        guard let recording = outbox.recordings[key], finishRecording(key) else {
            return unexpected("packagesRecorded(\(key))")
        }
        outbox.recordings.removeValue(forKey: key)
        outbox.results[key] = recording.result
        setProgress(.done, of: key)
        return [.markEnvironmentComplete(recording, packages: packages)] + proceed()
    }

    /// The packages could not be recorded: when the store cannot be reached, try again after a pause (or in the next
    /// session); otherwise the task fails with the reason.
    mutating func packagesNotRecorded(_ key: TaskKey, _ error: any Error) -> [AgentAction] {
        guard let recording = outbox.recordings[key], finishRecording(key) else {
            return unexpected("packagesNotRecorded(\(key))")
        }
        let error = PopError.wrapping(error)
        if error.code == .storeUnreachable {
            guard case .registered(var active) = session else { return [] }
            guard !active.recordingsPaused else { return [.note(.recordingFailed(key, error))] }
            session = .modifying
            active.recordingsPaused = true
            session = .registered(active)
            return [.note(.recordingFailed(key, error)), .schedule(.resumeRecordings, after: Configuration.retryPause)]
        }
        outbox.recordings.removeValue(forKey: key)
        var result = recording.result
        result.state = .failed
        result.error = "The packages were installed, but recording them with the service failed: \(error.message)"
        outbox.results[key] = result
        setProgress(.done, of: key)
        return proceed()
    }

    /// Takes `key` out of the recordings in flight; whether it was in flight.
    private mutating func finishRecording(_ key: TaskKey) -> Bool {
        guard case .registered(var active) = session, active.recordingsInFlight.contains(key) else { return false }
        session = .modifying
        active.recordingsInFlight.remove(key)
        session = .registered(active)
        return true
    }

    /// Task results were written (up to a failure): forget them, unless a newer result replaced one meanwhile.
    mutating func taskResultsWritten(_ written: [TaskKey: TaskResult], failure: (any Error)?) -> [AgentAction] {
        guard case .registered(var active) = session, case .inFlight = active.resultWrites else {
            return unexpected("taskResultsWritten")
        }
        session = .modifying
        for (key, result) in written where outbox.results[key] == result {
            outbox.results.removeValue(forKey: key)
        }
        let actions = active.resultWrites.finish(
            failure: failure, note: AgentNote.resultWritesFailed, resume: .resumeResultWrites)
        session = .registered(active)
        return actions + proceed()
    }

    /// Sets where a request stands.
    mutating func setProgress(_ progress: ServiceEntry.TaskProgress, of key: TaskKey) {
        services[key.service, default: ServiceEntry()].tasks[key.id] = progress
        forgetIfUnneeded(key.service)
    }
}
