import ArgumentParser
import PopState

/// `pop rollback NAME [--to V]`: brings back an earlier spec of a service, as a new version.
struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        _superCommandName: "pop",
        abstract: "Bring back an earlier spec of a service from its history (by default the one before), as a new version.",
        discussion: """
            The spec comes back byte for byte, so its signature is the one it had: instances restart into it as for \
            any configuration change (under the service's rollout policy). `pop history NAME` lists the versions.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service.")
    var name: String

    @Option(name: .long, help: ArgumentHelp("The version to bring back (default: the one before the current).", valueName: "version"))
    var to: Int32?

    @OptionGroup(title: "Change options") var change: ChangeOptions

    func run() async throws {
        let service = try ServiceName(name)
        if let to, to < 0 {
            throw PopError(.invalidInput, "--to must be a version (0 or more), not \(to).", hint: "`pop history \(service)` lists them.")
        }
        try await CommandContext.with(global) { context in
            let view = try await context.namespace.planningView(service, full: change.plan)
            guard let history = view.history else { return }
            try change.requireVersion(view, service)
            let target: Int32
            if let to {
                target = to
            } else {
                guard let previous = history.versions.last(where: { $0 < history.version }) else {
                    throw PopError(
                        .notFound, "The service '\(service)' has no earlier version in its history to roll back to. Nothing was changed.",
                        hint: "`pop history \(service)` lists its versions.")
                }
                target = previous
            }
            let entry = try await context.namespace.historyEntry(service, version: target)
            var after = view.state
            after.spec = entry.spec
            // The earlier spec's requirements are checked against the services as they are now.
            if entry.spec.requires != history.current.spec.requires || entry.spec.template.requires != history.current.spec.template.requires {
                try await context.namespace.checkRequirements(of: entry.spec)
            }
            try change.printIfPlanning(view.plan(service, after: after), context)
            guard entry.spec != history.current.spec else {
                context.done("\(service) already has the spec of version \(target); nothing changed (signature \(entry.signature.short))")
                return
            }
            let version = try await context.namespace.changeService(
                entry.spec, from: history, origin: .thisProcess(command: "pop rollback \(service) --to \(target)"))
            if context.json {
                try context.printJSON(
                    ["service": service.rawValue, "signature": entry.signature.hex, "version": String(version), "from": String(target)])
            }
            context.done(
                "rolled \(service) back to version \(target) as version \(version): signature \(history.current.spec.signature.short) → \(entry.signature.short); its instances restart")
        }
    }
}
