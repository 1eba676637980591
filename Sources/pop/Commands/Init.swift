import ArgumentParser
import PopState

/// `pop init [--force]`: creates pop's namespace in the store.
struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create pop's namespace in the store.",
        discussion: "Refuses when a namespace exists already, unless --force, which resets it (every service is removed).")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Reset an existing namespace: every service, placement and task is removed.")
    var force = false

    func run() async throws {
        try await CommandContext.with(global, requireNamespace: false) { context in
            try await context.namespace.initialize(force: force)
            if context.json {
                try context.printJSON(["prefix": context.namespace.prefix, "store": context.store.description])
            }
            context.done("initialized namespace \(context.namespace.prefix)\(force ? " (reset)" : "")")
        }
    }
}
