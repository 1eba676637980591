import Foundation
import PopState

/// Instances (what the supervisor runs) and their records in the store.
extension AgentStateMachine {
    // MARK: Instances

    /// At start, an instance a previous agent left running was adopted.
    mutating func instanceAdopted(_ status: InstanceStatus, generation: Int) -> [AgentAction] {
        services[status.name, default: ServiceEntry()].supervision = Supervision(status: status, generation: generation)
        return proceed()
    }

    /// The supervisor was asked to run the instance, started at `generation`.
    mutating func instanceLaunched(_ name: ServiceName, generation: Int) -> [AgentAction] {
        var supervision = services[name]?.supervision ?? Supervision(status: nil, generation: generation)
        supervision.generation = generation
        services[name, default: ServiceEntry()].supervision = supervision
        return proceed()
    }

    /// The instance could not be started: that is its problem until the service is read again.
    mutating func instanceLaunchFailed(_ name: ServiceName, reason: String, at now: Date) -> [AgentAction] {
        guard case .placed(var placed) = services[name]?.intent else {
            return unexpected("instanceLaunchFailed(\(name))")
        }
        placed.launchProblem = Problem(message: reason, since: now)
        services[name]?.intent = .placed(placed)
        markRecord(name)
        return proceed()
    }

    /// The supervisor reported a change: publish the instance's record; tasks that waited for it to finish
    /// installing are looked at again.
    mutating func supervisorReported(_ report: InstanceEvent) -> [AgentAction] {
        switch report {
        case .changed(let status):
            let name = status.name
            var entry = services[name] ?? ServiceEntry()
            entry.supervision = Supervision(status: status, generation: entry.supervision?.generation ?? 0)
            let waiting = status.state == .installing ? [] : entry.tasks.filter { $0.value == .waiting }.map(\.key)
            services[name] = entry
            // A command about to be spawned has no process yet; its record is written once it has one (milliseconds
            // later), which saves a store write per instance in a burst.
            if status.state != .starting || status.pid != nil { markRecord(name) }
            if !waiting.isEmpty {
                addPending { $0.tasks[name, default: []].formUnion(waiting.map(\.rawValue)) }
            }
        case .removed(let name):
            services[name]?.supervision = nil
            markRecord(name)
            forgetIfUnneeded(name)
        }
        return proceed()
    }

    /// An instance is stopped and forgotten: look at its service again, since its placement may have changed
    /// meanwhile.
    mutating func instanceRemoved(_ name: ServiceName) -> [AgentAction] {
        guard services[name]?.activity == .removing else { return unexpected("instanceRemoved(\(name))") }
        setActivity(.idle, of: name)
        addPending { $0.services.insert(name) }
        return proceed()
    }

    /// Adds to the pending changes of a registered session (between sessions there is nothing to add to: a new
    /// session reads everything).
    mutating func addPending(_ change: (inout PendingChanges) -> Void) {
        guard case .registered(var active) = session else { return }
        session = .modifying
        change(&active.pending)
        session = .registered(active)
    }

    // MARK: Records

    /// The record to publish for `service`: the supervisor's status with any problem of its spec, or a FATAL record
    /// naming the problem when nothing runs; deleted when there is nothing to say.
    func recordUpdate(for name: ServiceName) -> Outbox.RecordUpdate {
        guard let entry = services[name] else { return .delete }
        let problem = entry.problem
        if problem == nil, let waiting = waitingRecord(entry) { return .publish(waiting) }
        if let status = entry.supervision?.status {
            var record = status.record(machine: machine)
            if let problem { record.lastError = problem }
            return .publish(record)
        }
        let fatal: (Problem, ConfigSignature?)
        switch entry.intent {
        case .unusable(let problem, let signature): fatal = (problem, signature)
        case .placed(let placed) where placed.launchProblem != nil: fatal = (placed.launchProblem!, placed.signature)
        case .absent, .notPlaced, .placed: return .delete
        }
        return .publish(
            InstanceRecord(
                machine: machine, pid: nil, signature: fatal.1 ?? ConfigSignature(hex: ""), state: .fatal,
                since: fatal.0.since, lastError: fatal.0.message))
    }

    /// Queues the record of `service` for writing.
    mutating func markRecord(_ name: ServiceName) {
        outbox.records[name] = recordUpdate(for: name)
    }

    /// Takes every queued record into one batch: sets of records this session created, creates, and deletes.
    mutating func startPublishing(in active: inout ActiveSession) -> AgentAction {
        var batch: [ServiceName: RecordWrite] = [:]
        for (name, update) in outbox.records {
            switch update {
            case .delete:
                // Forgotten before it is deleted, so the deletion's echo is not taken for someone else's.
                active.publishedRecords.remove(name)
                batch[name] = .delete
            case .publish(let record):
                batch[name] = active.publishedRecords.contains(name) ? .set(record) : .create(record)
            }
        }
        outbox.records = [:]
        active.publishing = .inFlight(batch)
        return .publish(batch)
    }

    /// A batch of records was written (up to a failure): remember which nodes this session owns; on failure, queue
    /// again what was not written, unless a newer update is queued, and pause.
    mutating func recordsPublished(_ outcomes: [ServiceName: PublishOutcome], failure: (any Error)?) -> [AgentAction] {
        guard case .registered(var active) = session, case .inFlight(let batch) = active.publishing else {
            return unexpected("recordsPublished")
        }
        session = .modifying
        for (name, outcome) in outcomes {
            switch outcome {
            case .written: active.publishedRecords.insert(name)
            case .notPlaced, .deleted: active.publishedRecords.remove(name)
            }
        }
        for name in active.deletedWhilePublishing where outcomes[name] == .written {
            // Someone deleted the record while this batch wrote it; the write may have come first.
            active.publishedRecords.remove(name)
            if outbox.records[name] == nil, services[name]?.supervision?.status != nil { markRecord(name) }
        }
        active.deletedWhilePublishing = []
        if failure != nil {
            for (name, write) in batch where outcomes[name] == nil && outbox.records[name] == nil {
                switch write {
                case .create(let record), .set(let record): outbox.records[name] = .publish(record)
                case .delete: outbox.records[name] = .delete
                }
            }
        }
        let actions = active.publishing.finish(failure: failure, note: AgentNote.publishFailed, resume: .resumePublishing)
        session = .registered(active)
        return actions + proceed()
    }

    /// This machine's record of `service` was deleted. The agent forgets a record before deleting it itself, so a
    /// record it still counts as published was deleted by someone else, and is written again.
    mutating func recordDeleted(_ service: ServiceName, in active: inout ActiveSession) {
        if case .inFlight(let batch) = active.publishing, let write = batch[service] {
            if write != .delete { active.deletedWhilePublishing.insert(service) }
            return
        }
        guard active.publishedRecords.remove(service) != nil else { return }
        guard outbox.records[service] == nil, services[service]?.supervision?.status != nil else { return }
        markRecord(service)
    }
}
