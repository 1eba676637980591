import ArgumentParser
import Foundation
import PopState

/// `pop machines`: the machines whose agents are registered.
struct Machines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machines",
        abstract: "List machines whose agents are running: hostname, addresses, agent version, uptime.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    func run() async throws {
        try await CommandContext.with(global) { context in
            let machines = try await context.namespace.machines().sorted { $0.id < $1.id }
            if context.json {
                try context.printJSON(machines)
                return
            }
            let local = try? MachineIdentity.current(environment: ProcessInfo.processInfo.environment)
            var table = Table("MACHINE", "HOSTNAME", "ADDRESSES", "AGENT", "UPTIME")
            for machine in machines {
                table.append([
                    Table.Cell(machine.id.rawValue + (machine.id == local ? " (this)" : ""), .cyan),
                    Table.Cell(machine.hostname),
                    Table.Cell(machine.addresses.joined(separator: ",")),
                    Table.Cell(machine.agentVersion),
                    Table.Cell(Duration.short(since: machine.started)),
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
