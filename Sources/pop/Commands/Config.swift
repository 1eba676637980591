import ArgumentParser
import PopState
import PopTemplates

/// `pop config NAME [--OPTION VALUE ...]`: shows or changes a service's options.
struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        _superCommandName: "pop",
        abstract: "Show a service's options, or change them (every instance then restarts with the new signature).",
        discussion: """
            --max-parallel N makes this and later configuration changes roll out N machines at a time, in \
            machine-id order, each waiting until the previous instance runs the new configuration (healthy, when the \
            template has a check); 1 is a rolling restart, 0 restarts every machine at once again. It is kept with \
            the service.

            --canary N --healthy-time 10s --healthy-deadline 2m --auto-revert: a new signature goes first to N \
            machines; once they have been healthy for the healthy time, the rest follow in batches of --max-parallel, \
            each gated the same way. A batch not healthy by its deadline (crash loop, fatal, check never passing) \
            stops the rollout; with --auto-revert the last signature healthy everywhere comes back at once. --wait \
            waits for the rollout: exit 0 when it completed, 1 when it was reverted.

            --history-limit N sets how many specs the service's history keeps (default 20; see `pop history`).

            --plan prints what the change would do and changes nothing (exit 0: nothing would change, 2: something \
            would); --if-version V applies it only if the service is still at version V (else exit 4).

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

    @Option(
        name: .customLong("history-limit"),
        help: ArgumentHelp("How many specs the service's history keeps (kept; default 20).", valueName: "n"))
    var historyLimit: Int?

    @Option(
        name: .customLong("requires"),
        help: ArgumentHelp("Bind a requirement slot to another service (a new signature).", valueName: "slot=service"))
    var requires: [String] = []

    @OptionGroup(title: "Rollout options") var rolloutOptions: RolloutOptions

    @OptionGroup(title: "Change options") var change: ChangeOptions

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
        let settings = try historyLimit.map { (limit) throws(PopError) in try HistorySettings(limit: limit) }
        let bindings = try TemplateOptionArguments.bindings(requires)
        try await CommandContext.with(global) { context in
            if pairs.isEmpty && bindings.isEmpty && maxParallel == nil && !rolloutOptions.given && settings == nil && !change.plan
                && change.ifVersion == nil
            {
                try await show(service, context)
                return
            }
            let rollout = try await rolloutOptions.merged(service, maxParallel: maxParallel, context)
            let signature = try await apply(
                service, pairs, bindings: bindings, rollout: rollout, history: settings, context)
            if rolloutOptions.wait, let signature {
                try await rolloutOptions.waitForRollout(service, signature, context)
            }
        }
    }

    /// Plans the change and, unless only planning, writes it: the rollout and history settings first (so every agent
    /// that sees the new signature also sees how to roll it out), then the spec with compare-and-set, retried on a
    /// concurrent change unless --if-version pins the version.
    private func apply(
        _ service: ServiceName, _ pairs: [(name: String, value: String)], bindings: [String: String],
        rollout: Rollout?,
        history settings: HistorySettings?, _ context: CommandContext
    ) async throws -> ConfigSignature? {
        var settingsWritten = false
        for attempt in 1...20 {
            let view = try await context.namespace.planningView(service, full: change.plan)
            guard let history = view.history else { return nil }
            try change.requireVersion(view, service)
            var spec = history.current.spec
            spec.options = try OptionResolver(template: spec.template).update(spec.options, with: pairs)
            try spec.bindRequirements(bindings)
            try spec.checkPlaceholders()
            if !bindings.isEmpty { try await context.namespace.checkRequirements(of: spec) }
            var after = view.state
            after.spec = spec
            if let rollout { after.rollout = rollout.paces ? rollout : nil }
            if let settings { after.historyLimit = settings.limit }
            try change.printIfPlanning(view.plan(service, after: after), context)
            if !settingsWritten {
                if let rollout { try await context.namespace.setRollout(service, rollout) }
                if let settings { try await context.namespace.setHistoryLimit(service, settings) }
                settingsWritten = true
            }
            if spec == history.current.spec {
                if context.json {
                    try context.printJSON(
                        ["service": service.rawValue, "signature": spec.signature.hex, "version": String(history.version)])
                }
                context.done(doneWithoutRestart(service, spec, rollout: rollout, history: settings, changed: !pairs.isEmpty))
                return nil
            }
            do {
                let version = try await context.namespace.changeService(
                    spec, from: history, origin: .thisProcess(command: ChangeOrigin.commandText("pop config \(service)", pairs, spec)))
                if context.json {
                    try context.printJSON(
                        ["service": service.rawValue, "signature": spec.signature.hex, "version": String(version)])
                }
                context.done(
                    "changed \((pairs.map { "--\($0.name)" } + bindings.keys.sorted().map { "--requires \($0)" }).joined(separator: " ")) of \(service): signature \(history.current.spec.signature.short) → \(spec.signature.short), version \(version); its instances restart")
                return spec.signature
            } catch let error as PopError where error.code == .conflict && change.ifVersion == nil && attempt < 20 {
                continue
            }
        }
        return nil
    }

    private func doneWithoutRestart(
        _ service: ServiceName, _ spec: ServiceSpec, rollout: Rollout?, history: HistorySettings?, changed: Bool
    ) -> String {
        var parts: [String] = []
        if let rollout {
            parts.append(
                rollout.maxParallel.map { "configuration changes of \(service) roll out \($0) machine\($0 == 1 ? "" : "s") at a time" }
                    ?? (rollout.canary == nil ? "configuration changes of \(service) restart every machine at once" : "configuration changes of \(service) restart the rest at once after the canaries"))
            if let canary = rollout.canary {
                parts.append(
                    "a new signature goes first to \(canary) canary machine\(canary == 1 ? "" : "s"), healthy after \(Double(rollout.healthyTimeMilliseconds ?? 0) / 1000) s"
                        + (rollout.healthyDeadlineMilliseconds.map { ", within \(Double($0) / 1000) s" } ?? "")
                        + (rollout.autoRevert == true ? ", reverted automatically when a batch fails" : ""))
            }
        }
        if let history { parts.append("its history keeps the last \(history.limit) specs") }
        if changed || parts.isEmpty {
            parts.append("\(service) already has these options; nothing changed (signature \(spec.signature.short))")
        }
        return parts.joined(separator: "; ")
    }

    /// The command as its history records it: a secret option's value is never written.
    private func show(_ service: ServiceName, _ context: CommandContext) async throws {
        let history = try await context.namespace.history(service)
        let spec = history.current.spec
        if context.json {
            struct Shown: Encodable {
                var service: String, template: String, signature: String, version: Int32
                var options: [String: OptionValue]
            }
            try context.printJSON(
                Shown(
                    service: service.rawValue, template: spec.template.name, signature: spec.signature.hex,
                    version: history.version, options: Config.shownOptions(spec)))
            return
        }
        let out = context.out
        out.line("\(out.paint(service.rawValue, .bold))  template \(spec.template.name)  signature \(spec.signature.short)  version \(history.version)")
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
        for (slot, requirement, bound) in spec.boundRequirements {
            out.line(
                "requires \(slot) → \(bound)"
                    + (requirement.interface.map { " (interface \($0))" } ?? "")
                    + ", \(requirement.condition.rawValue), policy \(requirement.policy.rawValue)")
        }
    }

    /// Option values with secrets masked: a secret option's value is never shown.
    static func shownOptions(_ spec: ServiceSpec) -> [String: OptionValue] {
        var values = spec.options
        for option in spec.template.options where option.secret && values[option.name] != nil {
            values[option.name] = .string("********")
        }
        return values
    }

}
