import ArgumentParser
import Foundation
import PopState

/// `pop machines`: the machines whose agents are registered; `pop machines label|unlabel` changes their labels.
struct Machines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machines",
        _superCommandName: "pop",
        abstract: "List machines whose agents are running: hostname, addresses, agent version, uptime, endpoint, labels.",
        usage: """
            pop machines [<options>]
              pop machines label MACHINE KEY=VALUE ... [<options>]
              pop machines unlabel MACHINE KEY ... [<options>]
            """,
        discussion: """
            Labels steer services deployed by count (`pop deploy NAME --count N --label KEY=VALUE`). They are kept \
            for the machine whether or not its agent runs; `pop fg --label KEY=VALUE` sets them when the agent starts. \
            Machines that are drained, or that the scheduler has seen missing, are listed too.

            --prometheus FILE writes the agents' endpoints as Prometheus scrape targets (file_sd JSON, replaced \
            atomically, so Prometheus can watch it), and prints the scrape configuration to use with it. On a \
            protected namespace Prometheus authenticates with basic_auth and the namespace's user and password; on \
            an open one with a bearer token, which is written to FILE.token (mode 600). Run it again when machines \
            come and go (docs/observability.md).
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: ArgumentHelp("label or unlabel, followed by a machine id and labels (KEY=VALUE) or keys.", valueName: "action"))
    var action: [String] = []

    @Option(name: .long, help: ArgumentHelp("Write the agents' endpoints as Prometheus scrape targets (file_sd JSON) to this file.", valueName: "file"))
    var prometheus: String?

    func run() async throws {
        guard let verb = action.first else { return try await list() }
        let rest = Array(action.dropFirst())
        switch verb {
        case "label", "unlabel":
            guard let first = rest.first, rest.count >= 2 else {
                throw PopError(
                    .invalidInput, "`pop machines \(verb)` needs a machine id and at least one \(verb == "label" ? "KEY=VALUE" : "KEY").",
                    hint: "For example `pop machines \(verb) MACHINE \(verb == "label" ? "zone=a" : "zone")`.")
            }
            let machine = try MachineID(first)
            if verb == "label" {
                let labels = try MachineLabel.parse(Array(rest.dropFirst()))
                try await change(machine, "labelled", { $0.labels.merge(labels) { _, new in new } })
            } else {
                let keys = Array(rest.dropFirst())
                for key in keys { try MachineLabel.validateKey(key) }
                try await change(machine, "unlabelled", { facts in for key in keys { facts.labels[key] = nil } })
            }
        default:
            throw PopError(
                .invalidInput, "Unknown action '\(verb)' for `pop machines`.",
                hint: "`pop machines` lists machines; `pop machines label MACHINE KEY=VALUE` and `pop machines unlabel MACHINE KEY` change labels.")
        }
    }

    private func change(_ machine: MachineID, _ verb: String, _ body: @escaping @Sendable (inout MachineFacts) -> Void) async throws {
        try await CommandContext.with(global) { context in
            let (_, after) = try await context.namespace.updateFacts(machine, body)
            if context.json {
                try context.printJSON(["machine": machine.rawValue, "labels": after.labelText])
            }
            context.done("\(verb) \(machine): \(after.labels.isEmpty ? "no labels" : after.labelText)")
        }
    }

    private func list() async throws {
        try await CommandContext.with(global) { context in
            let machines = try await context.namespace.machines().sorted { $0.id < $1.id }
            if let prometheus {
                try await PrometheusTargets.write(machines, to: prometheus, context: context, global: global)
                return
            }
            let facts = try await context.namespace.machineFacts()
            if context.json {
                try context.printJSON(MachineListing(machines: machines, facts: facts))
                return
            }
            let local = try? MachineIdentity.current(environment: CommandEnvironment.variables)
            var table = Table("MACHINE", "HOSTNAME", "ADDRESSES", "AGENT", "UPTIME", "ENDPOINT", "LABELS")
            let registered = Set(machines.map(\.id))
            for machine in machines {
                let known = facts[machine.id]
                table.append([
                    Table.Cell(machine.id.rawValue + (machine.id == local ? " (this)" : ""), .cyan),
                    Table.Cell(machine.hostname),
                    Table.Cell(machine.addresses.joined(separator: ",")),
                    Table.Cell(machine.agentVersion),
                    Table.Cell(Duration.short(since: machine.started)),
                    Table.Cell(machine.endpoint ?? "-"),
                    Table.Cell((known?.labelText ?? "") + (known?.drained == true ? " (drained)" : "")),
                ])
            }
            for (id, known) in facts.sorted(by: { $0.key < $1.key }) where !registered.contains(id) {
                table.append([
                    Table.Cell(id.rawValue, .cyan), Table.Cell("-"), Table.Cell("-"), Table.Cell("down", .red),
                    Table.Cell(known.absentSince.map { "down " + Duration.short(since: $0) } ?? "-"), Table.Cell("-"),
                    Table.Cell(known.labelText + (known.drained ? " (drained)" : "")),
                ])
            }
            context.out.write(table.render(for: context.out))
            if machines.isEmpty {
                context.err.line("No agent is registered. Run `pop start` on each machine.")
            }
        }
    }
}

/// What `pop machines --json` prints: each machine with its registration (while its agent runs) and its facts.
struct MachineListing: Encodable {
    struct Entry: Encodable {
        var id: MachineID
        var hostname: String?
        var addresses: [String]?
        var agentVersion: String?
        var started: Date?
        var agentPID: Int32?
        var endpoint: String?
        var registered: Bool
        var labels: [String: String]
        var drained: Bool
        var absentSince: Date?
    }

    let entries: [Entry]

    init(machines: [MachineRecord], facts: [MachineID: MachineFacts]) {
        var entries = machines.map { record in
            Entry(
                id: record.id, hostname: record.hostname, addresses: record.addresses, agentVersion: record.agentVersion,
                started: record.started, agentPID: record.agentPID, endpoint: record.endpoint, registered: true,
                labels: facts[record.id]?.labels ?? [:], drained: facts[record.id]?.drained ?? false,
                absentSince: facts[record.id]?.absentSince)
        }
        let registered = Set(machines.map(\.id))
        for (id, known) in facts.sorted(by: { $0.key < $1.key }) where !registered.contains(id) {
            entries.append(
                Entry(id: id, registered: false, labels: known.labels, drained: known.drained, absentSince: known.absentSince))
        }
        self.entries = entries
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(entries)
    }
}

/// Short human durations for tables: 45s, 12m, 3h, 5d.
enum Duration {
    static func short(since date: Date, now: Date = Date()) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        switch seconds {
        case ..<60: return "\(seconds)s"
        case ..<3600: return "\(seconds / 60)m\(seconds % 60 < 10 ? "0" : "")\(seconds % 60)s"
        case ..<86400: return "\(seconds / 3600)h\(seconds % 3600 / 60 < 10 ? "0" : "")\(seconds % 3600 / 60)m"
        default: return "\(seconds / 86400)d\(seconds % 86400 / 3600)h"
        }
    }
}
