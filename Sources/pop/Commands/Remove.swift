import ArgumentParser
import PopState

/// `pop remove NAME`: undeploys a service everywhere and removes it.
struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        _superCommandName: "pop",
        abstract: "Undeploy a service from every machine and remove it.",
        discussion: "A service that other services require is kept (exit 4, naming them) unless --force is given.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service to remove.")
    var name: String

    @Flag(name: .long, help: "Remove it even though other services require it.")
    var force = false

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func run() async throws {
        let service = try ServiceName(name)
        try await CommandContext.with(global) { context in
            if !force { try await context.namespace.checkNoDependents(of: service) }
            try await change.check(service, context) { $0 = ServiceState(spec: nil) }
            try await context.namespace.removeService(service)
            if context.json {
                try context.printJSON(["removed": service.rawValue])
            }
            context.done("removed \(service); agents stop its instances")
        }
    }
}
