import ArgumentParser
import PopState

/// `pop undeploy NAME [MACHINE ...]`: takes a service off machines.
struct Undeploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undeploy",
        _superCommandName: "pop",
        abstract: "Take a service off machines (by default this machine; --all for every machine).")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service to undeploy.")
    var name: String

    @Argument(help: "Machine ids; default: this machine.")
    var machines: [String] = []

    @Flag(name: .long, help: "Undeploy from every machine.")
    var all = false

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func validate() throws {
        if all && !machines.isEmpty {
            throw ValidationError("Give machine ids or --all, not both.")
        }
    }

    func run() async throws {
        let service = try ServiceName(name)
        try await CommandContext.with(global) { context in
            if try await context.namespace.schedulingPolicy(service) != nil {
                guard all else {
                    throw PopError(
                        .conflict, "The service '\(service)' is deployed by count; the scheduler chooses its machines. Nothing was changed.",
                        hint: "`pop scale \(service) N` changes the count, `pop drain MACHINE` moves instances off a machine, `pop undeploy \(service) --all` takes it off every machine.")
                }
                try await change.check(service, context) { after in
                    after.placed = []
                    after.count = nil
                }
                let removed = try await context.namespace.undeployCounted(service)
                if context.json {
                    try context.printJSON(["service": service.rawValue, "undeployed": removed.map(\.rawValue).joined(separator: ",")])
                }
                context.done("undeployed \(service) (deployed by count) from every machine")
                return
            }
            let placed = try await context.namespace.placements(service)
            let targets = all ? Array(placed.keys).sorted() : try MachineArguments.resolve(machines)
            if !all {
                try PlacementCheck.requireDeployed(service, on: targets, placed: placed)
            }
            try await change.check(service, context) { $0.placed.subtract(targets) }
            let removed = try await context.namespace.undeploy(service, machines: targets)
            if context.json {
                try context.printJSON(["service": service.rawValue, "undeployed": removed.map(\.rawValue).joined(separator: ",")])
            }
            context.done(
                removed.isEmpty
                    ? "\(service) was not deployed anywhere"
                    : "undeployed \(service) from \(removed.map(\.rawValue).joined(separator: ", "))")
        }
    }
}
