import ArgumentParser
import PopState
import PopTemplates

/// `pop add NAME --template T [--OPTION VALUE ...]`: creates a service from a template.
struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        _superCommandName: "pop",
        abstract: "Add a service built from a template.",
        discussion: """
            Every --OPTION VALUE is checked against the template's declared options (see `pop describe TEMPLATE`). \
            The template is resolved now and stored with the service, so agents need no copy of its plugin.

            Example: pop add plone --template plone4 --port 8081
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service's name: lower-case letters, digits and dashes, starting with a letter.")
    var name: String

    @Option(name: .long, help: "The template to build the service from (see `pop list`).")
    var template: String

    @Option(
        name: .customLong("requires"),
        help: ArgumentHelp(
            "Bind a requirement slot of the template to a service (default: the service named like the slot).",
            valueName: "slot=service"))
    var requires: [String] = []

    @OptionGroup(title: "Change options") var change: ChangeOptions

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Template options.", valueName: "--OPTION VALUE"))
    var templateOptions: [String] = []

    func run() async throws {
        let serviceName = try ServiceName(name)
        let pairs = try TemplateOptionArguments.parse(templateOptions)
        let catalog = TemplateCatalog.discover()
        let resolved = try catalog.resolve(named: template)
        let values = try OptionResolver(template: resolved).resolve(pairs)
        var spec = ServiceSpec(name: serviceName, template: resolved, options: values)
        try spec.bindRequirements(try TemplateOptionArguments.bindings(requires))
        try spec.checkPlaceholders()
        try await CommandContext.with(global) { context in
            let view = try await context.namespace.planningView(serviceName, mayBeMissing: true, full: change.plan)
            if view.history != nil {
                throw PopError(
                    .conflict, "The service '\(serviceName)' already exists in the \(context.store).",
                    hint: "Choose another name, or `pop config \(serviceName)` to change it.")
            }
            try change.requireVersion(view, serviceName)
            try await context.namespace.checkRequirements(of: spec)
            try change.printIfPlanning(view.plan(serviceName, after: ServiceState(spec: spec)), context)
            try await context.namespace.addService(spec, origin: .thisProcess(command: ChangeOrigin.commandText("pop add \(serviceName) --template \(template)", pairs, spec)))
            if context.json {
                try context.printJSON(
                    ["service": serviceName.rawValue, "template": resolved.name, "signature": spec.signature.hex])
            }
            context.done(
                "added service \(serviceName) from template \(resolved.name) (signature \(spec.signature.short))")
        }
    }
}
