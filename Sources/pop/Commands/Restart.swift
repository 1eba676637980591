import ArgumentParser
import PopState

/// `pop restart NAME [MACHINE ...]`: restarts a service's instances (and clears FATAL).
struct Restart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        _superCommandName: "pop",
        abstract: "Restart a service's instances (all, or on the given machines); clears a FATAL state.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service to restart.")
    var name: String

    @Argument(help: "Machine ids; default: every machine the service is deployed to.")
    var machines: [String] = []

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func run() async throws {
        let service = try ServiceName(name)
        let targets = try machines.map { try MachineID($0) }
        try await CommandContext.with(global) { context in
            if !targets.isEmpty {
                try PlacementCheck.requireDeployed(
                    service, on: targets, placed: try await context.namespace.placements(service))
            }
            try await change.check(service, context) { after in
                after.restartAsked = targets.isEmpty ? after.placed : Set(targets)
            }
            let restarted = try await context.namespace.restart(service, machines: targets.isEmpty ? nil : targets)
            if context.json {
                try context.printJSON(["service": service.rawValue, "restarted": restarted.map(\.rawValue).joined(separator: ",")])
            }
            context.done(
                restarted.isEmpty
                    ? "\(service) is not deployed anywhere; nothing to restart"
                    : "asked \(restarted.map(\.rawValue).joined(separator: ", ")) to restart \(service)")
        }
    }
}
