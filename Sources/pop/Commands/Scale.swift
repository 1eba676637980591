import ArgumentParser
import PopState

/// `pop scale NAME N`: changes how many instances of a service deployed by count run.
struct Scale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        _superCommandName: "pop",
        abstract: "Change how many instances of a service deployed by count run (see `pop deploy --count`).")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service.")
    var name: String

    @Argument(help: "The number of instances (1 to 10000).")
    var count: Int

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func run() async throws {
        let service = try ServiceName(name)
        try SchedulingPolicy.validate(count: count)
        try await CommandContext.with(global) { context in
            // A pinned service has no count: the namespace refuses it below, also when only planning.
            try await change.check(service, context, planned: { $0.count != nil }) { $0.count = count }
            let previous = try await context.namespace.scale(service, count: count)
            if context.json {
                try context.printJSON(["service": service.rawValue, "count": String(count), "previous": String(previous)])
            }
            context.done("scaled \(service) from \(previous) to \(count)")
        }
    }
}
