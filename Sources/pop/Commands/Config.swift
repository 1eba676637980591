import ArgumentParser
import PopState
import PopTemplates

/// `pop config NAME [--OPTION VALUE ...]`: shows or changes a service's options.
struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show a service's options, or change them (every instance then restarts with the new signature).",
        discussion: """
            --max-parallel N makes this and later configuration changes roll out N machines at a time, in \
            machine-id order, each waiting until the previous instance runs the new configuration (healthy, when the \
            template has a check); 1 is a rolling restart, 0 restarts every machine at once again. It is kept with \
            the service.

            Example: pop config plone --port 8081
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service.")
    var name: String

    @Option(
        name: .customLong("max-parallel"),
        help: ArgumentHelp(
            "Restart at most this many machines at once on configuration changes (kept; 0: all at once).",
            valueName: "n"))
    var maxParallel: Int?

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Options to change.", valueName: "--OPTION VALUE"))
    var templateOptions: [String] = []

    func validate() throws {
        if let maxParallel, maxParallel < 0 {
            throw ValidationError("--max-parallel must be 0 (all at once) or more.")
        }
    }

    func run() async throws {
        let service = try ServiceName(name)
        let pairs = try TemplateOptionArguments.parse(templateOptions)
        try await CommandContext.with(global) { context in
            if let maxParallel {
                // Written before the spec, so every agent that sees the new signature also sees how to roll it out.
                try await context.namespace.setRollout(service, Rollout(maxParallel: maxParallel == 0 ? nil : maxParallel))
                if pairs.isEmpty {
                    context.done(
                        maxParallel == 0
                            ? "configuration changes of \(service) restart every machine at once"
                            : "configuration changes of \(service) roll out \(maxParallel) machine\(maxParallel == 1 ? "" : "s") at a time")
                    return
                }
            }
            if pairs.isEmpty {
                try await show(service, context)
            } else {
                try await change(service, pairs, context)
            }
        }
    }

    private func show(_ service: ServiceName, _ context: CommandContext) async throws {
        let current = try await context.namespace.service(service)
        let spec = current.spec
        if context.json {
            struct Shown: Encodable {
                var service: String, template: String, signature: String, version: Int32
                var options: [String: OptionValue]
            }
            try context.printJSON(
                Shown(
                    service: service.rawValue, template: spec.template.name, signature: spec.signature.hex,
                    version: current.version, options: Config.shownOptions(spec)))
            return
        }
        let out = context.out
        out.line("\(out.paint(service.rawValue, .bold))  template \(spec.template.name)  signature \(spec.signature.short)  version \(current.version)")
        var table = Table("OPTION", "VALUE", "DEFAULT", "TYPE")
        let shown = Config.shownOptions(spec)
        for option in spec.template.options {
            let value = shown[option.name].map { String(describing: $0) } ?? "-"
            let isDefault = spec.options[option.name] == option.defaultValue
            table.append([
                Table.Cell("--" + option.name, .cyan),
                Table.Cell(value, isDefault ? nil : .bold),
                Table.Cell(option.defaultValue.map { String(describing: $0) } ?? "-"),
                Table.Cell(Describe.typeText(option)),
            ])
        }
        out.write(table.render(for: out))
    }

    /// Option values with secrets masked: a secret option's value is never shown.
    static func shownOptions(_ spec: ServiceSpec) -> [String: OptionValue] {
        var values = spec.options
        for option in spec.template.options where option.secret && values[option.name] != nil {
            values[option.name] = .string("********")
        }
        return values
    }

    private func change(
        _ service: ServiceName, _ pairs: [(name: String, value: String)], _ context: CommandContext
    ) async throws {
        // Compare-and-set with retries: a concurrent change is re-read and this change applied on top of it,
        // so no update is lost and none is half-applied.
        for attempt in 1...20 {
            let current = try await context.namespace.service(service)
            var spec = current.spec
            spec.options = try OptionResolver(template: spec.template).update(spec.options, with: pairs)
            try spec.checkPlaceholders()
            if spec == current.spec {
                context.done("\(service) already has these options; nothing changed (signature \(spec.signature.short))")
                return
            }
            do {
                let version = try await context.namespace.updateService(spec, expectedVersion: current.version)
                if context.json {
                    try context.printJSON(
                        ["service": service.rawValue, "signature": spec.signature.hex, "version": String(version)])
                }
                context.done(
                    "changed \(pairs.map { "--\($0.name)" }.joined(separator: " ")) of \(service): signature \(current.spec.signature.short) → \(spec.signature.short); its instances restart")
                return
            } catch let error as PopError where error.code == .conflict && attempt < 20 {
                continue
            }
        }
    }
}
