import Foundation
import Logging
import PopState

extension Agent {
    /// Looks at task requests: answers those for this machine that have no answer from it yet, starting each when
    /// its turn comes (``TaskGate``) and its instance is not installing.
    func examineTasks(_ keys: [AgentState.TaskKey], session: AgentSession) async throws {
        let namespace = session.namespace
        let paths = namespace.paths
        let reads = try await namespace.store.read(
            keys.flatMap { [.get(paths.task($0.service, $0.id)), .children(paths.task($0.service, $0.id))] })
        var candidates: [(AgentState.TaskKey, TaskRequest, [MachineID])] = []
        for (offset, key) in keys.enumerated() {
            guard let node = try reads[offset * 2].nodeIfExists() else {
                markTask(key, .done)
                continue
            }
            let request: TaskRequest
            do {
                request = try Self.decode(TaskRequest.self, node)
            } catch {
                logger.error("ignoring a malformed task request", metadata: ["task": "\(node.path)", "error": "\(error.message)"])
                markTask(key, .done)
                continue
            }
            guard request.machines.contains(machine) else {
                markTask(key, .done)
                continue
            }
            if Date() > request.created.addingTimeInterval(Double(request.timeoutMilliseconds) / 1000) {
                markTask(key, .done)  // The requester has stopped waiting.
                continue
            }
            let answered = (try reads[offset * 2 + 1].childrenIfExists() ?? []).compactMap { try? MachineID($0) }
            candidates.append((key, request, answered))
        }
        guard !candidates.isEmpty else { return }

        // The results that decide: this machine's own, and those of the machines before it.
        var resultReads: [(Int, MachineID)] = []
        for (index, (_, request, answered)) in candidates.enumerated() {
            let position = request.machines.firstIndex(of: machine)!
            let relevant = Set(request.machines[...position])
            for other in answered where relevant.contains(other) { resultReads.append((index, other)) }
        }
        let resultNodes = try await namespace.store.read(
            resultReads.map { .get(paths.taskResult(candidates[$0.0].0.service, candidates[$0.0].0.id, $0.1)) })
        var results = [[MachineID: TaskResult.State]](repeating: [:], count: candidates.count)
        for ((index, other), node) in zip(resultReads, resultNodes) {
            guard let node = try node.nodeIfExists() else { continue }
            results[index][other] = (try? Self.decode(TaskResult.self, node))?.state ?? .failed
        }

        for (index, (key, request, _)) in candidates.enumerated() {
            if let own = results[index][machine] {
                let runningHere = state.withLock { $0.tasks[key] == .running }
                if own == .running, !runningHere {
                    // A previous agent started it and did not finish: say so rather than run it twice.
                    writeResult(
                        key,
                        TaskResult(
                            machine: machine, state: .failed, started: Date(), finished: Date(),
                            error: "The agent restarted while the task ran; its outcome is unknown."))
                }
                if !runningHere { markTask(key, .done) }
                continue
            }
            switch TaskGate(request).decision(for: machine, results: results[index]) {
            case .notAsked:
                markTask(key, .done)
            case .wait(let unfinished):
                logger.debug("task waits for its turn", metadata: ["task": "\(key.id)", "unfinished.before": "\(unfinished)"])
                markTask(key, .waiting)
            case .start:
                let installing = state.withLock { $0.statuses[key.service]?.state == .installing }
                if installing {
                    markTask(key, .waiting)
                    continue
                }
                markTask(key, .running)
                operationSink.yield(.runTask(key, request))
            }
        }
    }

    func markTask(_ key: AgentState.TaskKey, _ progress: AgentState.TaskProgress) {
        state.withLock { $0.tasks[key] = progress }
    }

    /// Runs one task request here and writes its results (`running`, then the outcome).
    func runTask(_ key: AgentState.TaskKey, _ request: TaskRequest) async {
        let started = Date()
        let service = key.service
        logger.info(
            "running task", metadata: ["service": "\(service)", "task": "\(request.task)", "id": "\(key.id)"])
        var result: TaskResult
        do {
            let (task, argv, environment, blueprint, spec) = try taskCommand(service, request)
            let directory = blueprint.directory
            writeResult(key, TaskResult(machine: machine, state: .running, started: started))
            let outcome = await TaskProcess.run(
                argv: argv, environment: environment, workingDirectory: directory,
                timeout: .milliseconds(request.timeoutMilliseconds), outputLimit: configuration.taskOutputLimit)
            result = TaskResult(
                machine: machine, state: outcome.succeeded ? .succeeded : .failed, exitCode: outcome.exitCode,
                output: outcome.output, started: started, finished: Date(), error: outcome.failure)
            if outcome.succeeded, task.recordsPackages {
                do {
                    let recorded = try await recordPackages(request.arguments, of: spec.name)
                    markEnvironmentComplete(blueprint, spec: spec, packages: recorded)
                } catch {
                    result.state = .failed
                    result.error =
                        "The packages were installed, but recording them with the service failed: \((error as? PopError)?.message ?? "\(error)")"
                }
            }
        } catch {
            result = TaskResult(
                machine: machine, state: .failed, started: started, finished: Date(),
                error: error.description)
        }
        logger.info(
            "task finished",
            metadata: [
                "service": "\(service)", "task": "\(request.task)", "id": "\(key.id)", "state": "\(result.state)",
                "exit": "\(result.exitCode.map(String.init) ?? "-")",
            ])
        writeResult(key, result)
        markTask(key, .done)
    }

    /// The task's argv, environment and folder, or a ``PopError`` a person can act on.
    func taskCommand(
        _ service: ServiceName, _ request: TaskRequest
    ) throws(PopError) -> (TemplateTask, [String], [String: String], InstanceBlueprint, ServiceSpec) {
        let (spec, packages, placed) = state.withLock {
            ($0.specs[service], $0.packages[service] ?? [], $0.desired[service] != nil)
        }
        guard let spec, placed else {
            throw PopError(
                .notFound, "The service '\(service)' is not deployed on machine \(machine), or its spec cannot be read.")
        }
        guard let task = spec.template.tasks.first(where: { $0.name == request.task }) else {
            let names = spec.template.tasks.map(\.name)
            throw PopError(
                .notFound,
                "The service '\(service)' has no task '\(request.task)'. "
                    + (names.isEmpty ? "Its template defines no tasks." : "Its tasks are: \(names.joined(separator: ", ")).")
            )
        }
        if task.recordsPackages {
            guard !request.arguments.isEmpty else {
                throw PopError(.invalidInput, "The task '\(task.name)' needs at least one package requirement.")
            }
            for argument in request.arguments where argument.hasPrefix("-") || argument.isEmpty {
                throw PopError(
                    .invalidInput,
                    "The requirement '\(argument)' is empty or starts with '-'; each argument must be one package requirement, not an option.")
            }
        }
        let blueprint = try InstanceBlueprint(
            spec: spec, machine: machine, directory: configuration.instanceDirectory(service), packages: packages,
            baseEnvironment: configuration.instanceBaseEnvironment)
        let argv = try Placeholders.expand(task.command, values: blueprint.values, arguments: request.arguments)
        try PrivateFiles.ensureFolder(blueprint.directory)
        return (task, argv, blueprint.taskEnvironment(task: task.name, options: spec.options), blueprint, spec)
    }

    /// After packages were installed into a complete environment and recorded, marks the environment complete for
    /// the new requirement set too, so the next start of the instance (such as after `pop config`) does not run pip
    /// over every requirement again. An environment that was not complete before is left for setup to finish.
    func markEnvironmentComplete(_ blueprint: InstanceBlueprint, spec: ServiceSpec, packages: [String]) {
        guard let before = blueprint.environmentMarker,
            FileManager.default.fileExists(atPath: blueprint.directory + "/" + before),
            let after = try? InstanceBlueprint(
                spec: spec, machine: machine, directory: blueprint.directory, packages: packages,
                baseEnvironment: configuration.instanceBaseEnvironment
            ).environmentMarker,
            after != before
        else { return }
        if !FileManager.default.createFile(atPath: blueprint.directory + "/" + after, contents: nil) {
            logger.warning(
                "could not mark the environment complete; the next start runs pip again",
                metadata: ["service": "\(spec.name)", "marker": "\(after)"])
        }
    }

    /// Appends packages to the service's record (compare-and-set), waiting for a session if there is none; returns
    /// the whole record.
    func recordPackages(_ packages: [String], of service: ServiceName) async throws -> [String] {
        var attempts = 0
        while true {
            attempts += 1
            guard let session = state.withLock({ $0.session }) else {
                if attempts > 30 { throw PopError(.storeUnreachable, "No store session to record the packages in.") }
                try await Task.sleep(for: .seconds(1))
                continue
            }
            do {
                return try await session.namespace.appendPackages(service, packages)
            } catch let error as PopError where error.code == .storeUnreachable && attempts <= 30 {
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Writes a task result now, or keeps it for the next pass when the store cannot take it.
    func writeResult(_ key: AgentState.TaskKey, _ result: TaskResult) {
        let session = state.withLock { state -> AgentSession? in
            state.unwrittenResults[key] = result
            return state.session
        }
        session?.reconcile.signal()
    }

    /// Writes the task results waiting to be written.
    func flushTaskResults(_ session: AgentSession) async throws {
        let waiting = state.withLock { $0.unwrittenResults }
        for (key, result) in waiting.sorted(by: { ($0.key.service, $0.key.id) < ($1.key.service, $1.key.id) }) {
            do {
                try await session.namespace.writeTaskResult(key.service, key.id, result)
            } catch let error as PopError where error.code == .notFound {
                // The request was deleted meanwhile.
            }
            state.withLock { state in
                if state.unwrittenResults[key] == result { state.unwrittenResults.removeValue(forKey: key) }
            }
        }
    }
}
