import ArgumentParser
import Foundation
import PopState

/// `pop deploy NAME [MACHINE ...]`: places a service on machines (by default this one), or `--count N` instances
/// wherever the elected scheduler finds eligible machines.
struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        _superCommandName: "pop",
        abstract: "Place a service on machines (by default this machine), or --count N instances anywhere eligible.",
        discussion: """
            Deploying before a machine's agent has started is normal: the service starts there when the agent does. \
            Named machines pin the service there; it is never moved.

            With --count N the elected scheduler places N instances on distinct eligible machines (registered, not \
            drained, carrying every --label), spread across the values of the --spread label and then onto the \
            machines with the fewest instances. When a machine's agent has been gone for longer than \
            --reschedule-after, its instances go elsewhere. `pop scale NAME N` changes N.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service to deploy.")
    var name: String

    @Argument(help: "Machine ids (see `pop machines`); default: this machine.")
    var machines: [String] = []

    @Option(name: .long, help: ArgumentHelp("Run this many instances, on machines the scheduler chooses (1 to 10000).", valueName: "n"))
    var count: Int?

    @Option(name: .customLong("label"), help: ArgumentHelp("With --count: only machines with this label (repeatable).", valueName: "key=value"))
    var labels: [String] = []

    @Option(name: .long, help: ArgumentHelp("With --count: spread instances across the values of this label.", valueName: "key"))
    var spread: String?

    @Option(
        name: .customLong("reschedule-after"),
        help: ArgumentHelp("With --count: seconds a machine may be missing before its instances move (default 30).", valueName: "seconds"))
    var rescheduleAfter: Double?

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func run() async throws {
        let service = try ServiceName(name)
        if let count {
            guard machines.isEmpty else {
                throw PopError(
                    .invalidInput, "Give machine ids or --count, not both: named machines pin a service, --count lets the scheduler choose.",
                    hint: "`pop deploy \(service) --count \(count)`, or `pop deploy \(service) MACHINE ...`.")
            }
            let after = rescheduleAfter ?? Double(SchedulingPolicy.defaultRescheduleAfterMilliseconds) / 1000
            guard after.isFinite else {
                throw PopError(.invalidInput, "--reschedule-after must be a number of seconds.")
            }
            let policy = try SchedulingPolicy(
                count: count, labels: try MachineLabel.parse(labels), spread: spread,
                rescheduleAfterMilliseconds: after >= 0 && after <= 86_400 ? Int((after * 1000).rounded()) : -1)
            try await CommandContext.with(global) { context in
                // A pinned service is refused by the namespace below, also when only planning.
                try await change.check(service, context, planned: { $0.placed.isEmpty || $0.count != nil }) {
                    $0.count = count
                }
                try await context.namespace.deploy(service, policy: policy)
                if context.json {
                    try context.printJSON(["service": service.rawValue, "count": String(count)])
                }
                context.done(
                    "deployed \(service) by count: \(count) instance\(count == 1 ? "" : "s")"
                        + (policy.labels.isEmpty ? "" : " on machines with \(policy.labelText)")
                        + (policy.spread.map { ", spread by \($0)" } ?? ""))
            }
            return
        }
        guard labels.isEmpty, spread == nil, rescheduleAfter == nil else {
            throw PopError(
                .invalidInput, "--label, --spread and --reschedule-after go with --count.",
                hint: "`pop deploy \(service) --count N --label KEY=VALUE`.")
        }
        let targets = try MachineArguments.resolve(machines)
        try await CommandContext.with(global) { context in
            _ = try await context.namespace.service(service)
            // A service deployed by count is refused by the namespace below, also when only planning.
            try await change.check(service, context, planned: { $0.count == nil }) { $0.placed.formUnion(targets) }
            let registered = Set(try await context.namespace.machines().map(\.id))
            for machine in targets where !registered.contains(machine) {
                context.warn(
                    "machine \(machine) has no running agent registered; \(service) will start there once `pop start` runs on it.")
            }
            let added = try await context.namespace.deploy(service, machines: targets)
            if context.json {
                try context.printJSON(["service": service.rawValue, "deployed": added.map(\.rawValue).joined(separator: ",")])
            }
            let already = targets.filter { !added.contains($0) }
            if !already.isEmpty {
                context.err.line("\(service) was already deployed to \(already.map(\.rawValue).joined(separator: ", ")).")
            }
            context.done("deployed \(service) to \(targets.map(\.rawValue).joined(separator: ", "))")
        }
    }
}

/// Turns machine arguments into validated ids, defaulting to this machine.
enum MachineArguments {
    static func resolve(_ arguments: [String]) throws -> [MachineID] {
        if arguments.isEmpty {
            return [try MachineIdentity.current(environment: CommandEnvironment.variables)]
        }
        var seen = Set<MachineID>()
        return try arguments.compactMap { argument in
            let id = try MachineID(argument)
            return seen.insert(id).inserted ? id : nil
        }
    }
}
