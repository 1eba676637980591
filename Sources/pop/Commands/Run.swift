import ArgumentParser
import Foundation
import Synchronization
import PopState

/// `pop run SERVICE TASK [ARGS ...]`: runs a task in every instance of a service, on every machine at once.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        _superCommandName: "pop",
        abstract: "Run a service's task on every machine running it, and print each machine's result.",
        discussion: """
            Each argument reaches the task as one argument; nothing passes through a shell. Exits non-zero if any \
            machine failed or was not reached before the timeout.

            Example: pop run plone install lxml==5.3.0
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Run only on this machine (repeatable).", valueName: "machine"))
    var machine: [String] = []

    @Option(
        name: .customLong("max-parallel"),
        help: ArgumentHelp("At most this many machines at once (1 for a rolling upgrade).", valueName: "n"))
    var maxParallel: Int?

    @Option(
        name: .long,
        help: ArgumentHelp("Seconds to wait for every machine before reporting the rest as not reached.", valueName: "seconds"))
    var timeout: Double = 600

    @Argument(help: "The service.")
    var service: String

    @Argument(help: "The task (see `pop describe TEMPLATE`).")
    var task: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the task.")
    var arguments: [String] = []

    func validate() throws {
        if let maxParallel, maxParallel < 1 {
            throw ValidationError("--max-parallel must be at least 1.")
        }
        if timeout <= 0 {
            throw ValidationError("--timeout must be positive.")
        }
    }

    func run() async throws {
        let name = try ServiceName(service)
        let only = try machine.map { try MachineID($0) }
        let outcome = try await CommandContext.with(global) { context in
            let spec = try await context.namespace.service(name).spec
            guard spec.template.tasks.contains(where: { $0.name == task }) else {
                let known = spec.template.tasks.map(\.name)
                throw PopError(
                    .notFound, "Service \(name) (template \(spec.template.name)) has no task '\(task)'.",
                    hint: known.isEmpty ? "Its template defines no tasks." : "Its tasks: \(known.joined(separator: ", ")).")
            }
            let placed = try await context.namespace.placements(name).keys.sorted()
            let targets = only.isEmpty ? placed : only
            if let stray = targets.first(where: { !placed.contains($0) }) {
                throw PopError(.notFound, "\(name) is not deployed to machine \(stray).")
            }
            guard !targets.isEmpty else {
                throw PopError(.notFound, "\(name) is not deployed anywhere, so no machine can run '\(task)'.",
                    hint: "Deploy it first: pop deploy \(name)")
            }
            let request = TaskRequest(
                task: task, arguments: arguments, machines: targets, maxParallel: maxParallel, created: Date(),
                timeoutMilliseconds: Int(timeout * 1000))
            let id = try await context.namespace.createTask(name, request)
            if !context.json {
                context.err.line(context.err.paint(
                    "running \(task) on \(targets.count) machine\(targets.count == 1 ? "" : "s") (\(id)) · store: \(context.store.description)", .dim))
            }
            return try await collect(name, id, targets, context)
        }
        if !outcome { throw ExitCode.failure }
    }

    /// Prints results as machines finish; returns whether every machine succeeded.
    private func collect(
        _ name: ServiceName, _ id: TaskID, _ targets: [MachineID], _ context: CommandContext
    ) async throws -> Bool {
        let taskPath = try NamespacePaths(root: context.namespace.prefix).task(name, id)
        let progress = TaskProgress()
        let json = context.json
        let namespace = context.namespace
        // Prints each machine's result once, as it arrives; machines finishing together cost one read.
        _ = try await namespace.read(
            {
                for (_, result) in try await namespace.taskResults(name, id).sorted(by: { $0.key < $1.key })
                where result.state != .running && progress.record(result) {
                    if !json { Run.printResult(result, context) }
                }
                return progress.count
            }, until: { $0 >= targets.count }, wokenByChangesUnder: taskPath,
            deadline: ContinuousClock.now + .milliseconds(Int(timeout * 1000)))
        var finals = progress.finals
        // Whatever is still missing now was not reached in time.
        let results = try await context.namespace.taskResults(name, id)
        var unreached: [(MachineID, String)] = []
        for machine in targets where finals[machine] == nil {
            if let result = results[machine], result.state != .running {
                finals[machine] = result
                if !context.json { Run.printResult(result, context) }
            } else {
                let why = results[machine] == nil ? "not reached" : "still running at the timeout"
                unreached.append((machine, why))
                if !context.json {
                    context.out.line(context.out.paint("── \(machine): \(why) after \(Int(timeout)) s", .red))
                }
            }
        }
        let failed = finals.values.filter { $0.state != .succeeded }.count + unreached.count
        if context.json {
            struct Summary: Encodable {
                var task: String
                var results: [TaskResult]
                var unreached: [String: String]
                var failed: Int
            }
            try context.printJSON(
                Summary(
                    task: id.rawValue, results: finals.values.sorted { $0.machine < $1.machine },
                    unreached: Dictionary(uniqueKeysWithValues: unreached.map { ($0.0.rawValue, $0.1) }),
                    failed: failed))
        } else {
            let ok = targets.count - failed
            context.out.line(context.out.paint(
                "\(task): \(ok) of \(targets.count) machine\(targets.count == 1 ? "" : "s") succeeded", failed == 0 ? .green : .red))
        }
        return failed == 0
    }

    private static func printResult(_ result: TaskResult, _ context: CommandContext) {
        let out = context.out
        let seconds = result.finished.map { String(format: "%.1f s", $0.timeIntervalSince(result.started)) } ?? ""
        let status: String
        if let code = result.exitCode {
            status = "exit \(code)"
        } else {
            status = result.error ?? result.state.rawValue
        }
        out.line(out.paint("── \(result.machine): \(status) · \(seconds)", result.state == .succeeded ? .green : .red))
        if !result.output.isEmpty {
            out.write(result.output.hasSuffix("\n") ? result.output : result.output + "\n")
        }
        if let error = result.error, result.exitCode != nil {
            out.line(out.paint(error, .red))
        }
    }
}

/// The final results collected so far, shared between the watch loop and the timeout.
private final class TaskProgress: Sendable {
    private let state = Mutex<[MachineID: TaskResult]>([:])

    /// Records a final result; false when this machine's result was recorded already.
    func record(_ result: TaskResult) -> Bool {
        state.withLock { finals in
            guard finals[result.machine] == nil else { return false }
            finals[result.machine] = result
            return true
        }
    }

    var count: Int { state.withLock { $0.count } }
    var finals: [MachineID: TaskResult] { state.withLock { $0 } }
}
