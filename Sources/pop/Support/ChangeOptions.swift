import ArgumentParser
import PopState

/// `--plan` and `--if-version`, taken by every command that changes a service.
struct ChangeOptions: ParsableArguments {
    @Flag(
        name: .long,
        help: "Print what the change would do (restarts and why, batches, lowest running) and change nothing; exit 0 when nothing would change, 2 when something would.")
    var plan = false

    @Option(
        name: .customLong("if-version"),
        help: ArgumentHelp(
            "Change the service only if it is still at this version (see --plan or `pop history`); otherwise exit 4.",
            valueName: "version"))
    var ifVersion: Int32?

    /// Refuses the change (`.conflict`, exit 4) when `--if-version` is given and the service is at another version.
    func requireVersion(_ view: PlanningView, _ service: ServiceName) throws(PopError) {
        guard let ifVersion else { return }
        guard let version = view.version else {
            throw PopError(
                .conflict, "The service '\(service)' does not exist, so it is not at version \(ifVersion) (--if-version). Nothing was changed.",
                hint: "`pop status` lists the services.")
        }
        guard version == ifVersion else {
            throw PopError(
                .conflict,
                "The service '\(service)' is at version \(version), not \(ifVersion) (--if-version): it changed since. Nothing was changed.",
                hint: "`pop history \(service)` shows what changed; plan again with --plan.")
        }
    }

    /// For a command that changes placements, the count or the whole service: with `--plan` or `--if-version`, reads
    /// the service, refuses the change when it moved on, and with `--plan` prints the plan of the state `change`
    /// makes (when `planned` says the command would go ahead) and ends the command. Without either it reads nothing,
    /// so that such a command still works on a service whose spec is damaged (`pop remove` is how it goes).
    func check(
        _ service: ServiceName, _ context: CommandContext, planned: (ServiceState) -> Bool = { _ in true },
        _ change: (inout ServiceState) -> Void
    ) async throws {
        guard plan || ifVersion != nil else { return }
        let view = try await context.namespace.planningView(service, full: plan)
        try requireVersion(view, service)
        guard planned(view.state) else { return }
        var after = view.state
        change(&after)
        try printIfPlanning(view.plan(service, after: after), context)
    }

    /// With `--plan`: prints `plan` and ends the command, exiting 0 when nothing would change and 2 when something
    /// would. Without it, returns.
    func printIfPlanning(_ plan: @autoclosure () -> ChangePlan, _ context: CommandContext) throws {
        guard self.plan else { return }
        let plan = plan()
        if context.json {
            try context.printJSON(PlanJSON(plan))
        } else {
            PlanText.print(plan, to: context.out)
        }
        throw ExitCode(plan.changesAnything ? 2 : 0)
    }
}

/// A plan as `--plan --json` prints it: the plan's fields plus `changes`.
struct PlanJSON: Encodable {
    let plan: ChangePlan

    init(_ plan: ChangePlan) { self.plan = plan }

    enum Keys: String, CodingKey { case changes }

    func encode(to encoder: any Encoder) throws {
        try plan.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(plan.changesAnything, forKey: .changes)
    }
}

/// The plain-text form of a plan.
enum PlanText {
    static func print(_ plan: ChangePlan, to out: Terminal) {
        let signatures: String
        switch (plan.signatureBefore, plan.signatureAfter) {
        case (let before?, let after?) where before != after:
            signatures = "signature \(before.prefix(8)) → \(after.prefix(8))"
        case (let before?, nil):
            signatures = "signature \(before.prefix(8)) → removed"
        case (nil, let after?):
            signatures = "new, signature \(after.prefix(8))"
        case (let same?, _):
            signatures = "signature \(same.prefix(8)) unchanged"
        case (nil, nil):
            signatures = "no such service"
        }
        out.line(
            out.paint("plan for \(plan.service)", .bold) + "  version " + (plan.version.map(String.init) ?? "-") + "  "
                + signatures)
        guard plan.changesAnything else {
            out.line("  nothing would change")
            return
        }
        var table = Table("ACTION", "MACHINE", "WHY")
        for change in plan.restarts { table.append([Table.Cell("restart", .yellow), Table.Cell(change.machine), Table.Cell(change.reason)]) }
        for change in plan.starts { table.append([Table.Cell("start", .green), Table.Cell(change.machine), Table.Cell(change.reason)]) }
        for change in plan.stops { table.append([Table.Cell("stop", .red), Table.Cell(change.machine), Table.Cell(change.reason)]) }
        if !(plan.restarts.isEmpty && plan.starts.isEmpty && plan.stops.isEmpty) {
            out.write(table.render(for: out))
        }
        if plan.restarts.isEmpty, !plan.options.isEmpty {
            out.line("  options: " + plan.options.map(\.text).joined(separator: ", ") + " (no instance is placed)")
        }
        for change in plan.withoutRestart {
            out.line("  no restart: \(change)")
        }
        if !plan.batches.isEmpty {
            out.line(
                "  batches: " + plan.batches.enumerated().map { "\($0.offset + 1). \($0.element.joined(separator: ", "))" }
                    .joined(separator: "; "))
        }
        out.line("  running: \(plan.runningNow) now, at least \(plan.lowestRunning) during the change")
    }
}
