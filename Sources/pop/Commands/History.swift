import ArgumentParser
import Foundation
import PopState

/// `pop history NAME [--diff V]`: the specs a service has had.
struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        _superCommandName: "pop",
        abstract: "List the specs a service has had (the last 20 by default), or with --diff V what version V changed.",
        discussion: """
            Every change of a service's spec keeps it as a new version, with the time, user@host, command and \
            signature. `pop rollback NAME --to V` brings one back. `pop config NAME --history-limit N` sets how many \
            are kept.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service.")
    var name: String

    @Option(name: .long, help: ArgumentHelp("Show the options version V changed, against the version before it.", valueName: "version"))
    var diff: Int32?

    func run() async throws {
        let service = try ServiceName(name)
        try await CommandContext.with(global) { context in
            let (history, entries) = try await context.namespace.historyEntries(service)
            if let diff {
                try showDiff(service, diff, entries, history, context)
                return
            }
            if context.json {
                struct Shown: Encodable {
                    var version: Int32, time: Date, user: String, command: String, signature: String, current: Bool
                }
                try context.printJSON(
                    entries.map {
                        Shown(
                            version: $0.version, time: $0.time, user: $0.user, command: $0.command,
                            signature: $0.signature.hex, current: $0.version == history.version)
                    })
                return
            }
            let out = context.out
            var table = Table("VERSION", "TIME", "USER", "SIGNATURE", "COMMAND")
            let formatter = ISO8601DateFormatter()
            for entry in entries.reversed() {
                let current = entry.version == history.version
                table.append([
                    Table.Cell(String(entry.version) + (current ? " (current)" : ""), current ? .bold : nil),
                    Table.Cell(formatter.string(from: entry.time)),
                    Table.Cell(entry.user),
                    Table.Cell(entry.signature.short),
                    Table.Cell(entry.command),
                ])
            }
            out.write(table.render(for: out))
            if entries.isEmpty {
                out.line("\(service) has no history yet: it was added by an earlier release; its next change starts it.")
            }
        }
    }

    private func showDiff(
        _ service: ServiceName, _ version: Int32, _ entries: [HistoryEntry], _ history: ServiceHistory,
        _ context: CommandContext
    ) throws {
        guard let index = entries.firstIndex(where: { $0.version == version }) else {
            throw PopError(
                .notFound,
                "The service '\(service)' has no version \(version) in its history (it keeps \(Self.kept(entries))).",
                hint: "`pop history \(service)` lists its versions.")
        }
        let entry = entries[index]
        let previous = index > 0 && entries[index - 1].version == version - 1 ? entries[index - 1] : nil
        let changes = previous.map { ConfigurationPlan.OptionChange.between($0.spec, entry.spec) }
            ?? ConfigurationPlan.OptionChange.between(
                ServiceSpec(name: entry.spec.name, template: entry.spec.template, options: [:]), entry.spec)
        if context.json {
            struct Shown: Encodable {
                var service: String, version: Int32, against: Int32?, signature: String, command: String
                var templateChanged: Bool
                var options: [ConfigurationPlan.OptionChange]
            }
            try context.printJSON(
                Shown(
                    service: service.rawValue, version: version, against: previous?.version,
                    signature: entry.signature.hex, command: entry.command,
                    templateChanged: previous.map { $0.spec.template != entry.spec.template } ?? false, options: changes))
            return
        }
        let out = context.out
        out.line(
            out.paint("\(service) version \(version)", .bold)
                + (previous.map { " against version \($0.version)" } ?? " (no earlier version kept: against no options)")
                + "  signature \(entry.signature.short)  \(entry.command)")
        if let previous, previous.spec.template != entry.spec.template {
            out.line("  template \(previous.spec.template.name) → \(entry.spec.template.name) (its definition changed)")
        }
        if changes.isEmpty { out.line("  no option changed") }
        for change in changes { out.line("  " + change.text) }
    }

    static func kept(_ entries: [HistoryEntry]) -> String {
        entries.isEmpty ? "none" : "versions \(entries.first!.version) to \(entries.last!.version)"
    }
}
