import ArgumentParser
import Foundation
import PopState

/// `pop machines`: the machines whose agents are registered.
struct Machines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machines",
        abstract: "List machines whose agents are running: hostname, addresses, agent version, uptime, endpoint.",
        discussion: """
            --prometheus FILE writes the agents' endpoints as Prometheus scrape targets (file_sd JSON, replaced \
            atomically, so Prometheus can watch it), and prints the scrape configuration to use with it. On a \
            protected namespace Prometheus authenticates with basic_auth and the namespace's user and password; on \
            an open one with a bearer token, which is written to FILE.token (mode 600). Run it again when machines \
            come and go (docs/observability.md).
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Write the agents' endpoints as Prometheus scrape targets (file_sd JSON) to this file.", valueName: "file"))
    var prometheus: String?

    func run() async throws {
        try await CommandContext.with(global) { context in
            let machines = try await context.namespace.machines().sorted { $0.id < $1.id }
            if let prometheus {
                try await PrometheusTargets.write(machines, to: prometheus, context: context, global: global)
                return
            }
            if context.json {
                try context.printJSON(machines)
                return
            }
            let local = try? MachineIdentity.current(environment: ProcessInfo.processInfo.environment)
            var table = Table("MACHINE", "HOSTNAME", "ADDRESSES", "AGENT", "UPTIME", "ENDPOINT")
            for machine in machines {
                table.append([
                    Table.Cell(machine.id.rawValue + (machine.id == local ? " (this)" : ""), .cyan),
                    Table.Cell(machine.hostname),
                    Table.Cell(machine.addresses.joined(separator: ",")),
                    Table.Cell(machine.agentVersion),
                    Table.Cell(Duration.short(since: machine.started)),
                    Table.Cell(machine.endpoint ?? "-"),
                ])
            }
            context.out.write(table.render(for: context.out))
            if machines.isEmpty {
                context.err.line("No agent is registered. Run `pop start` on each machine.")
            }
        }
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
