import Foundation
import Logging
import PopState

extension Agent {
    /// Runs one task request here (the core decided it is this machine's turn) and reports its progress: a `running`
    /// result when the command starts, then the final result, or the packages it installed, which the core records
    /// with the service before it writes the result.
    func runTask(_ launch: TaskLaunch, report: (AgentEvent) -> Void) async {
        let key = launch.key
        let request = launch.request
        let started = Date()
        logger.info("running task", metadata: ["service": "\(key.service)", "task": "\(request.task)", "id": "\(key.id)"])
        let prepared: PreparedTask
        do {
            prepared = try taskCommand(launch)
        } catch {
            journal?.record(
                LifecycleEvent(
                    .taskFinished, service: key.service.rawValue, task: request.task, taskID: "\(key.id)", succeeded: false,
                    detail: error.description))
            report(
                .taskFinished(
                    key,
                    TaskResult(machine: machine, state: .failed, started: started, finished: Date(), error: error.description)
                ))
            return
        }
        report(.taskStarted(key, TaskResult(machine: machine, state: .running, started: started)))
        journal?.record(LifecycleEvent(.taskStarted, service: key.service.rawValue, task: request.task, taskID: "\(key.id)"))
        let outcome = await TaskProcess.run(
            argv: prepared.argv, environment: prepared.environment, workingDirectory: prepared.blueprint.directory,
            timeout: .milliseconds(request.timeoutMilliseconds), outputLimit: configuration.taskOutputLimit)
        let result = TaskResult(
            machine: machine, state: outcome.succeeded ? .succeeded : .failed, exitCode: outcome.exitCode,
            output: outcome.output, started: started, finished: Date(), error: outcome.failure)
        logger.info(
            "task finished",
            metadata: [
                "service": "\(key.service)", "task": "\(request.task)", "id": "\(key.id)", "state": "\(result.state)",
                "exit": "\(result.exitCode.map(String.init) ?? "-")",
            ])
        journal?.record(
            LifecycleEvent(
                .taskFinished, service: key.service.rawValue, exitCode: result.exitCode, task: request.task, taskID: "\(key.id)",
                succeeded: outcome.succeeded, detail: outcome.failure))
        if outcome.succeeded, prepared.task.recordsPackages {
            report(
                .packagesInstalled(
                    key,
                    PackageRecording(
                        packages: request.arguments, blueprint: prepared.blueprint, spec: prepared.spec, result: result)))
        } else {
            report(.taskFinished(key, result))
        }
    }

    /// A task's command, worked out and ready to run.
    struct PreparedTask {
        var task: TemplateTask
        var argv: [String]
        var environment: [String: String]
        var blueprint: InstanceBlueprint
        var spec: ServiceSpec
    }

    /// The task's argv, environment and folder, or a ``PopError`` a person can act on.
    func taskCommand(_ launch: TaskLaunch) throws(PopError) -> PreparedTask {
        let service = launch.key.service
        let request = launch.request
        guard let placed = launch.service else {
            throw PopError(
                .notFound, "The service '\(service)' is not deployed on machine \(machine), or its spec cannot be read.")
        }
        let spec = placed.spec
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
            spec: spec, machine: machine, directory: configuration.instanceDirectory(service), packages: placed.packages,
            baseEnvironment: configuration.instanceBaseEnvironment)
        let argv = try Placeholders.expand(task.command, values: blueprint.values, arguments: request.arguments)
        try PrivateFiles.ensureFolder(blueprint.directory)
        return PreparedTask(
            task: task, argv: argv, environment: blueprint.taskEnvironment(task: task.name, options: spec.options),
            blueprint: blueprint, spec: spec)
    }

    /// After packages were installed into a complete environment and recorded, marks the environment complete for
    /// the new requirement set too, so the next start of the instance (such as after `pop config`) does not run pip
    /// over every requirement again. An environment that was not complete before is left for setup to finish.
    func markEnvironmentComplete(_ recording: PackageRecording, packages: [String]) {
        let blueprint = recording.blueprint
        guard let before = blueprint.environmentMarker,
            FileManager.default.fileExists(atPath: blueprint.directory + "/" + before),
            let after = try? InstanceBlueprint(
                spec: recording.spec, machine: machine, directory: blueprint.directory, packages: packages,
                baseEnvironment: configuration.instanceBaseEnvironment
            ).environmentMarker,
            after != before
        else { return }
        if !FileManager.default.createFile(atPath: blueprint.directory + "/" + after, contents: nil) {
            logger.warning(
                "could not mark the environment complete; the next start runs pip again",
                metadata: ["service": "\(recording.spec.name)", "marker": "\(after)"])
        }
    }
}
