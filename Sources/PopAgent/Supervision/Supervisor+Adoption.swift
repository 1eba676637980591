#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import PopState

extension Supervisor {
    /// Supervises again the process recorded in `stateDirectory` by an earlier agent, if it is still the same process,
    /// or makes sure nothing of it runs.
    ///
    /// The record's pid must be alive and its start time (from `/proc`) must equal the recorded one, so that a pid
    /// reused by another process is never mistaken for the instance. An adopted process keeps its pid and is not
    /// restarted; it is watched through a pidfd like any other, though its exit status cannot be known (it is not
    /// this process's child). A recorded process that is the instance's but cannot be adopted (a setup step, which
    /// is run afresh, or one that does not lead its group) is killed with its group; so are the leftovers of a dead
    /// one. So when this returns `.gone`, nothing the record names runs any more, and the record is left for
    /// ``start(_:)`` to replace.
    public func adopt(stateDirectory: String) -> AdoptionOutcome {
        let record: LocalInstanceRecord
        do {
            guard let found = try LocalInstanceRecord.read(from: stateDirectory) else { return .noRecord }
            record = found
        } catch {
            logger.warning("unreadable instance record", metadata: ["error": "\(error)"])
            return .noRecord
        }
        let name = record.configuration.name
        let pid = record.pid
        if state.withLock({ $0.instances[name] != nil }) { return .alreadySupervised(name) }
        guard let stat = ProcessTable.stat(pid), !stat.hasExited else {
            let killed = killLeftovers(of: record)
            let leftovers = killed > 0 ? "; killed \(killed) leftover process(es) of its group" : ""
            return gone(name, "process \(pid) no longer exists\(leftovers)")
        }
        guard stat.startTime == record.processStartTime else {
            return gone(name, "pid \(pid) now belongs to another process (its start time differs)")
        }
        // From here on the process is the recorded one: a pid and a start time never repeat together.
        if let step = record.setupStep {
            killRecorded(record)
            return gone(name, "setup step '\(step)' (process \(pid)) was cut short by the previous agent; killed its process group so that it runs afresh")
        }
        guard stat.processGroup == record.processGroup else {
            killRecorded(record)
            return gone(name, "process \(pid) does not lead process group \(record.processGroup); killed it")
        }
        let handle: Int32
        do { handle = try ProcessTable.openHandle(pid) } catch {
            return gone(name, "process \(pid) cannot be watched: \(error.message)")
        }
        let isChild = stat.parent == getpid()
        if isChild { ChildReaper.track(pid) }
        let token = makeToken()
        let watched = WatchedProcess(pid: pid, handle: handle, token: token, isChild: isChild, stepName: nil)
        let now = Moment.now()
        let age = now.date.timeIntervalSince(record.started)
        let started = Moment(instant: now.instant - .milliseconds(Int64(max(age, 0) * 1000)), date: record.started)
        let configuration = record.configuration
        state.withLock { $0.registrations[token] = .process(name, pid: pid) }
        let outcome = mutate(name, now: now, create: configuration) { entry in
            entry.process = watched
            entry.processSignature = configuration.signature
            return entry.machine.adopted(
                pid: pid, started: started, restarts: record.restarts, lastRestart: record.lastRestart, at: now)
        }
        loop.add(handle, mask: ProcessEventLoop.readable, token: token)
        logger.info(
            "adopted running instance",
            metadata: ["service": "\(name)", "pid": "\(pid)", "signature": "\(configuration.signature)"])
        let status = outcome?.changed
        finish(outcome, name: name)
        return status.map { .adopted($0) } ?? .alreadySupervised(name)
    }

    /// Kills what is left of a dead instance's process group (background children holding its ports, say), so
    /// the instance can start afresh. A group id stays allocated while any member lives, so members found here
    /// belong to the recorded group; the session and start-time checks guard against anything else.
    private func killLeftovers(of record: LocalInstanceRecord) -> Int {
        let group = record.processGroup
        guard group > 1, kill(-group, 0) == 0 else { return 0 }
        let leftovers = ProcessTable.processes(inGroup: group).filter { pid in
            guard let stat = ProcessTable.stat(pid) else { return false }
            return stat.session == group && stat.startTime >= record.processStartTime
        }
        for pid in leftovers { kill(pid, SIGKILL) }
        if !leftovers.isEmpty {
            logger.warning(
                "killed leftover processes of a dead instance",
                metadata: ["service": "\(record.configuration.name)", "group": "\(group)", "count": "\(leftovers.count)"])
        }
        return leftovers.count
    }

    /// Kills the recorded process and its group, and waits (briefly) until the process has exited, so that what it
    /// holds (a port, a virtual environment being installed) is free for the instance's next start.
    private func killRecorded(_ record: LocalInstanceRecord) {
        let handle = try? ProcessTable.openHandle(record.pid)
        kill(-record.processGroup, SIGKILL)
        kill(record.pid, SIGKILL)
        guard let handle else { return }
        var entry = pollfd(fd: handle, events: Int16(POLLIN), revents: 0)
        _ = poll(&entry, 1, 2000)
        close(handle)
    }

    private func gone(_ name: ServiceName, _ reason: String) -> AdoptionOutcome {
        logger.info("recorded instance is gone; not adopting", metadata: ["service": "\(name)", "reason": "\(reason)"])
        return .gone(name, reason: reason)
    }
}
