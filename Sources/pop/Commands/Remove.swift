import ArgumentParser
import PopState

/// `pop remove NAME`: undeploys a service everywhere and removes it.
struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Undeploy a service from every machine and remove it.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service to remove.")
    var name: String

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func run() async throws {
        let service = try ServiceName(name)
        try await CommandContext.with(global) { context in
            try await change.check(service, context) { $0 = ServiceState(spec: nil) }
            try await context.namespace.removeService(service)
            if context.json {
                try context.printJSON(["removed": service.rawValue])
            }
            context.done("removed \(service); agents stop its instances")
        }
    }
}
