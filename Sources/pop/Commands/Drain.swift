import ArgumentParser
import PopState

/// `pop drain MACHINE`: moves the instances placed by count off a machine and keeps new ones away from it.
struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        _superCommandName: "pop",
        abstract: "Move the instances deployed by count off a machine (each replacement runs first); place none there until `pop undrain`.",
        discussion: """
            Pinned instances (deployed to named machines) stay; they are listed as a warning. The machine keeps its \
            drained mark whether or not its agent runs.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The machine id.")
    var machine: String

    func run() async throws {
        let id = try MachineID(machine)
        try await CommandContext.with(global) { context in
            let (before, _) = try await context.namespace.updateFacts(id) { $0.drained = true }
            let snapshot = try await context.namespace.status()
            let pinned = snapshot.services.filter { status in
                status.placements.contains { $0.machine == id && !$0.placement.isScheduled }
            }.map(\.spec.name.rawValue)
            if !pinned.isEmpty {
                context.warn(
                    "\(id) still runs pinned instances, which drain does not move: \(pinned.joined(separator: ", ")). `pop undeploy NAME \(id)` takes them off.")
            }
            if context.json {
                try context.printJSON(["machine": id.rawValue, "drained": "true", "pinned": pinned.joined(separator: ",")])
            }
            context.done(before.drained ? "\(id) was already drained" : "drained \(id)")
        }
    }
}

/// `pop undrain MACHINE`: makes a drained machine eligible again.
struct Undrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undrain",
        _superCommandName: "pop",
        abstract: "Make a drained machine eligible for instances deployed by count again.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The machine id.")
    var machine: String

    func run() async throws {
        let id = try MachineID(machine)
        try await CommandContext.with(global) { context in
            let (before, _) = try await context.namespace.updateFacts(id) { $0.drained = false }
            if context.json {
                try context.printJSON(["machine": id.rawValue, "drained": "false"])
            }
            context.done(before.drained ? "undrained \(id)" : "\(id) was not drained")
        }
    }
}
