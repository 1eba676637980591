#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import PopState

extension Supervisor {
    /// Handles one event on the event thread.
    func handle(_ event: ProcessEventLoop.Event) {
        switch event {
        case .childSignal:
            // Instances are reaped through their pidfds; what is left to sweep (orphaned grandchildren, log writers)
            // can wait a moment, so that a burst of exits costs one sweep rather than one per exit.
            let first = state.withLock { state in
                defer { state.sweepScheduled = true }
                return !state.sweepScheduled
            }
            if first { schedule(.sweep, after: Self.sweepDelay) }
        case .ready(let token, _), .timer(let token):
            let registration = state.withLock { state -> Registration? in
                switch state.registrations[token] {
                case .probeSocket?: return state.registrations[token]
                default: return state.registrations.removeValue(forKey: token)
                }
            }
            switch registration {
            case .process(let name, let pid)?:
                processExited(name, pid: pid, token: token)
            case .timer(let name, let generation)?:
                feed(name) { machine, now in machine.timerFired(generation: generation, at: now) }
            case .sweep?:
                state.withLock { $0.sweepScheduled = false }
                let reaped = ChildReaper.sweep()
                if reaped > 0 { logger.debug("reaped orphaned processes", metadata: ["count": "\(reaped)"]) }
            case .probeSocket(let name, let generation)?:
                continueProbe(name, token: token, generation: generation)
            case .probeTimeout(let name, let socketToken, let generation)?:
                probeTimedOut(name, socketToken: socketToken, generation: generation)
            case nil:
                return
            }
        }
    }

    /// The process behind `token` exited: kill what is left of its group, reap it, and tell the machine.
    private func processExited(_ name: ServiceName, pid: Int32, token: UInt64) {
        let watched = state.withLock { state -> WatchedProcess? in
            guard var entry = state.instances[name], let process = entry.process, process.token == token else {
                return nil
            }
            entry.process = nil
            state.instances[name] = entry
            return process
        }
        guard let watched else { return }
        loop.remove(watched.handle)
        CrashPoint.reach(.exitSeen)
        // The exited leader is not reaped yet, so its pid (the group id) cannot have been reused: this SIGKILL
        // reaches only what is left of the instance's own group, such as background grandchildren.
        kill(-pid, SIGKILL)
        var status = ExitStatus.unknown
        if watched.isChild, case .exited(let exit) = ProcessTable.reap(handle: watched.handle) {
            status = exit
        }
        close(watched.handle)
        ChildReaper.untrack(pid)
        CrashPoint.reach(.exitReaped)
        logger.info(
            "process exited",
            metadata: ["service": "\(name)", "pid": "\(pid)", "status": "\(status)"])
        let stepName = watched.stepName
        feed(name) { machine, now in machine.processExited(pid: pid, status: status, stepName: stepName, at: now) }
    }

    // MARK: Health probes

    func startProbe(_ name: ServiceName, _ configuration: InstanceConfiguration, generation: UInt64) {
        guard let health = configuration.health else {
            feed(name) { machine, now in
                machine.probeFinished(generation: generation, healthy: false, detail: "no health check", at: now)
            }
            return
        }
        let (connection, step) = HealthProbeConnection.start(health.target)
        let token = makeToken()
        if case .finished = step {
            probeStepped(name, token: token, generation: generation, connection: connection, step: step)
            return
        }
        schedule(
            .probeTimeout(name, socketToken: token, generation: generation),
            after: .milliseconds(health.timeoutMilliseconds))
        probeStepped(name, token: token, generation: generation, connection: connection, step: step)
    }

    private func continueProbe(_ name: ServiceName, token: UInt64, generation: UInt64) {
        guard var connection = state.withLock({ $0.probes[token] }) else { return }
        let step = connection.resume()
        probeStepped(name, token: token, generation: generation, connection: connection, step: step)
    }

    private func probeStepped(
        _ name: ServiceName, token: UInt64, generation: UInt64, connection: HealthProbeConnection,
        step: HealthProbeConnection.Step
    ) {
        switch step {
        case .finished(let healthy, let detail):
            state.withLock { state in
                state.probes[token] = nil
                state.registrations[token] = nil
            }
            if !healthy { logger.debug("health probe failed", metadata: ["service": "\(name)", "detail": "\(detail)"]) }
            feed(name) { machine, now in
                machine.probeFinished(generation: generation, healthy: healthy, detail: detail, at: now)
            }
        case .waitWritable, .waitReadable:
            state.withLock { state in
                state.probes[token] = connection
                state.registrations[token] = .probeSocket(name, generation: generation)
            }
            let mask = step == .waitWritable ? ProcessEventLoop.writable : ProcessEventLoop.readable
            loop.add(connection.socket, mask: mask, token: token)
        }
    }

    private func probeTimedOut(_ name: ServiceName, socketToken: UInt64, generation: UInt64) {
        let connection = state.withLock { state -> HealthProbeConnection? in
            state.registrations[socketToken] = nil
            return state.probes.removeValue(forKey: socketToken)
        }
        guard var connection else { return }
        loop.remove(connection.socket)
        connection.cancel()
        let timeout = state.withLock { $0.instances[name]?.configuration.health?.timeoutMilliseconds } ?? 0
        let detail = "no answer within \(timeout) ms"
        feed(name) { machine, now in machine.probeFinished(generation: generation, healthy: false, detail: detail, at: now) }
    }
}
